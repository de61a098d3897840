"""The numba.cuda kernels (``kernels``), twins of the CPU kernels; the public
GPU API is :mod:`fastwarp.cuda`.  Nothing here is imported unless a GPU call is made."""
