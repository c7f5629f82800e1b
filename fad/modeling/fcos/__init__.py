"""FCOS: its head (`head`), locations (`locations`), targets and losses (`loss`), the detector
(`detector`) and its registry entry (`entry`: MODEL.FCOS -> the detector, its checks, its tower
defaults)."""
