"""endface training pipeline (teacher diffusion → labels → student UNet → ONNX + manifest)."""
