"""Data layer: dataset catalog, COCO/VOC/shapes datasets, transforms, samplers and loaders.

Modules: `catalog` (names -> paths), `coco` and `voc` (datasets sharing `detection`), `shapes`
(the embedded synthetic set), `image_io`, `transforms`, `samplers`, `build` (loaders).
"""
