"""RetinaNet: its head (`head`), anchors (`anchors`), targets and losses (`loss`), the detector
(`detector`) and its registry entry (`entry`: MODEL.RETINANET -> the detector, its checks, its
tower defaults)."""
