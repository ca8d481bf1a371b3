"""The embedded embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime."""
