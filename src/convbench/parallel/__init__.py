"""Training on several devices: data parallel and tensor parallel, in PyTorch and TensorFlow.

torch_parallel: DDP and a tensor-parallel ConvNet over torch.distributed (launched by torchrun).
tf_parallel: MirroredStrategy over logical CPU devices or GPUs; DTensor tensor parallel where it runs.
worker / tf_worker: run scaling cells and write one record per cell.
"""
