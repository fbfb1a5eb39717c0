"""The text branch: a tf-idf document as a signal on the word graph -> the common space."""

from __future__ import annotations

import torch
from scipy import sparse
from torch import nn

from fglab.config import ModelConfig
from fglab.models.gcn import GraphConvStack


class TextBranch(nn.Module):
    """hidden = ReLU(A x + G(gcn(x))); out = B dropout(hidden).

    ``A x`` is a linear skip path on the (scaled) tf-idf signal, ``G`` reads the graph
    convolution's output. With ``text_branch="mlp"`` only the skip path exists: the same
    network without the graph, for the comparison. The skip path is why the graph branch
    cannot do worse than the MLP: it adds graph-smoothed evidence to the words themselves.
    """

    def __init__(self, n_words: int, config: ModelConfig, laplacian: sparse.spmatrix | None):
        super().__init__()
        self.scale = config.signal_scale
        self.skip = nn.Linear(n_words, config.hidden_dim)
        self.gcn: GraphConvStack | None = None
        self.readout: nn.Linear | None = None
        if config.text_branch == "gcn":
            if laplacian is None:
                raise ValueError("text_branch 'gcn' needs the word graph's Laplacian")
            self.gcn = GraphConvStack(laplacian, config.gcn_filters, config.cheb_k)
            self.readout = nn.Linear(n_words * self.gcn.out_features, config.hidden_dim, bias=False)
        self.norm = nn.BatchNorm1d(config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_dim, config.embed_dim)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        x = signal * self.scale
        hidden = self.skip(x)
        if self.gcn is not None and self.readout is not None:
            hidden = hidden + self.readout(self.gcn(x))
        return self.out(self.dropout(torch.relu(self.norm(hidden))))
