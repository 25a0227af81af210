"""On-device image understanding: the vision model contract, preprocessing, labels, tagging.

Runtime needs numpy, Pillow and onnxruntime only. The shipped model is EfficientNet-Lite0
(ImageNet-1k), exported to ONNX by the ``efficientnet-lite0`` model builder. Its contract, which
any model with the `vision` capability used by the `image` skill follows:

* input ``image``: float32 ``[N, 3, 224, 224]``, RGB scaled to [0, 1], made by
  ``aios.vision.preprocess``; the model's own normalization is inside the graph;
* output ``logits``: float32 ``[N, 1000]`` over the ImageNet-1k classes (``aios.vision.labels``).
"""

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
NUM_CLASSES = 1000
