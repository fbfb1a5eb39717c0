"""The text branch: a tf-idf document as a signal on the word graph (and, optionally, the
text's pretrained sentence embedding) -> the common space."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from torch import nn

from fglab.config import ModelConfig
from fglab.models.gcn import GraphConvStack


class TextBranch(nn.Module):
    """hidden = ReLU(A x + G(gcn(x)) + S z); out = B dropout(hidden).

    ``A x`` is a linear skip path on the (scaled) tf-idf signal, ``G`` reads the graph
    convolution's output. With ``text_branch="mlp"`` only the skip path exists: the same
    network without the graph, for the comparison. The skip path is why the graph branch
    cannot do worse than the MLP: it adds graph-smoothed evidence to the words themselves.

    With ``n_sentence`` > 0 each input row is the tf-idf signal followed by a pretrained
    sentence embedding z of that many columns, standardized (training mean/std, buffers) and
    read by its own linear map ``S``: what the words alone miss (synonyms, word order, other
    phrasings) enters beside them.
    """

    def __init__(
        self, n_words: int, config: ModelConfig, laplacian: sparse.spmatrix | None,
        n_sentence: int = 0,
    ):
        super().__init__()
        self.n_words, self.n_sentence = n_words, n_sentence
        self.scale = config.signal_scale
        self.skip = nn.Linear(n_words, config.hidden_dim)
        self.gcn: GraphConvStack | None = None
        self.readout: nn.Linear | None = None
        if config.text_branch == "gcn":
            if laplacian is None:
                raise ValueError("text_branch 'gcn' needs the word graph's Laplacian")
            self.gcn = GraphConvStack(laplacian, config.gcn_filters, config.cheb_k)
            self.readout = nn.Linear(n_words * self.gcn.out_features, config.hidden_dim, bias=False)
        self.sentence: nn.Linear | None = None
        if n_sentence:
            self.register_buffer("sentence_mean", torch.zeros(n_sentence))
            self.register_buffer("sentence_std", torch.ones(n_sentence))
            self.sentence = nn.Linear(n_sentence, config.hidden_dim, bias=False)
        self.norm = nn.BatchNorm1d(config.hidden_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_dim, config.embed_dim)

    def fit_sentence_map(self, embeddings: np.ndarray) -> None:
        """Learn the sentence part's standardization from the training texts' embeddings
        (pretrained embeddings share a large common direction: centering removes it)."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        self.sentence_mean.copy_(torch.from_numpy(embeddings.mean(axis=0)))
        self.sentence_std.copy_(torch.from_numpy(np.maximum(embeddings.std(axis=0), 1e-6)))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        x = signal[:, : self.n_words] * self.scale
        hidden = self.skip(x)
        if self.gcn is not None and self.readout is not None:
            hidden = hidden + self.readout(self.gcn(x))
        if self.sentence is not None:
            z = (signal[:, self.n_words :] - self.sentence_mean) / self.sentence_std
            hidden = hidden + self.sentence(z)
        return self.out(self.dropout(torch.relu(self.norm(hidden))))
