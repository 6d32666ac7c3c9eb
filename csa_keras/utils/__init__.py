"""Small helpers below everything else: atomic files, the commands' one-line errors, and the CPU's
kernels for TensorFlow."""
