"""The fglab networks: graph-convolution text branch, image branch, dual-path scorer, siamese
text network. Pure torch modules; training lives in :mod:`fglab.training`."""
