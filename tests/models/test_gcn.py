from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from fglab.config import ModelConfig
from fglab.models.gcn import ChebConv, GraphConvStack, sparse_tensor
from fglab.models.scorer import DualPathScorer, unit
from fglab.models.siamese import CrossModalNetwork
from fglab.models.text_branch import TextBranch


def _path_laplacian(n: int) -> sparse.csr_matrix:
    adjacency = sparse.diags([np.ones(n - 1), np.ones(n - 1)], [-1, 1])
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv = sparse.diags(1 / np.sqrt(degree))
    return (sparse.identity(n) - inv @ adjacency @ inv - sparse.identity(n)).tocsr()


def test_chebconv_matches_dense_chebyshev_polynomials():
    torch.manual_seed(0)
    laplacian = _path_laplacian(5)
    conv = ChebConv(2, 3, k=3)
    x = torch.randn(4, 5, 2, requires_grad=True)  # (batch, nodes, features)
    dense = torch.from_numpy(laplacian.toarray()).float()
    t0, t1 = x, dense @ x
    t2 = 2 * dense @ t1 - t0
    expected = sum(t @ conv.weight[k] for k, t in enumerate((t0, t1, t2))) + conv.bias
    actual = conv(x.permute(2, 1, 0), sparse_tensor(laplacian)).permute(2, 1, 0)
    assert torch.allclose(actual, expected, atol=1e-5)
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    (grad_actual,) = torch.autograd.grad(actual.square().sum(), x)
    assert torch.allclose(grad_actual, grad_expected, atol=1e-4)


def test_order_one_chebconv_ignores_the_graph():
    conv = ChebConv(1, 2, k=1)
    x = torch.randn(1, 5, 3)  # (features, nodes, batch)
    out = conv(x, sparse_tensor(_path_laplacian(5)))
    expected = (x.permute(1, 2, 0) @ conv.weight[0] + conv.bias).permute(2, 0, 1)
    assert torch.allclose(out, expected)


def test_graph_filter_spreads_a_word_signal_to_its_neighbours_only():
    stack = GraphConvStack(_path_laplacian(7), (1,), k=2)
    with torch.no_grad():
        stack.layers[0].weight[0].fill_(1.0)  # x
        stack.layers[0].weight[1].fill_(-1.0)  # -L~ x = D^-1/2 W D^-1/2 x: neighbours
    signal = torch.zeros(1, 7)
    signal[0, 3] = 1.0
    out = stack(signal).reshape(7)
    assert out[2] > 0 and out[4] > 0  # one hop
    assert out[0] == 0 and out[6] == 0  # beyond K - 1 hops


def test_text_branch_gcn_and_mlp_shapes_and_gradients():
    config = ModelConfig(hidden_dim=16, embed_dim=8, gcn_filters=(2, 1))
    for branch in ("gcn", "mlp"):
        config.text_branch = branch
        net = TextBranch(7, config, _path_laplacian(7))
        out = net(torch.rand(4, 7))
        out.sum().backward()
        assert out.shape == (4, 8)
        assert net.skip.weight.grad is not None
        assert (net.gcn is not None) == (branch == "gcn")


def test_folded_scores_rank_like_the_dual_path_score():
    torch.manual_seed(1)
    scorer = DualPathScorer(6, dropout=0.4).eval()
    with torch.no_grad():
        scorer.weight.uniform_(0.5, 1.5)
        scorer.bias.fill_(0.3)
    t, v = unit(torch.randn(3, 6)), unit(torch.randn(4, 6))
    rows = [torch.stack([scorer.weight @ (a * b) + scorer.bias for b in v]) for a in t]
    direct = torch.stack(rows)
    assert torch.allclose(scorer.all_pairs(t, v), direct, atol=1e-6)
    assert torch.allclose(scorer.fold(t) @ v.T + scorer.bias, direct, atol=1e-6)


def test_cross_modal_network_encodings_give_its_scores():
    config = ModelConfig(hidden_dim=16, embed_dim=8, gcn_filters=(2, 1))
    net = CrossModalNetwork(7, 5, config, _path_laplacian(7)).eval()
    texts, images = torch.rand(3, 7), torch.rand(4, 5)
    scores = net.all_pairs(texts, images)
    folded = net.encode_texts(texts) @ net.encode_images(images).T + net.scorer.bias
    assert torch.allclose(scores, folded, atol=1e-5)


def test_narrowing_chebconv_matches_the_recurrence_on_the_input_width():
    """A layer with fewer outputs than inputs filters after projecting (Clenshaw's
    recurrence); values and gradients equal the plain three-term recurrence."""
    torch.manual_seed(1)
    laplacian = sparse_tensor(_path_laplacian(6))
    for k in (1, 2, 3, 4):
        conv = ChebConv(4, 1, k=k)
        x = torch.randn(4, 6, 3, requires_grad=True)
        narrow = conv(x, laplacian)
        wide = conv._filter_then_project(x, laplacian)
        assert torch.allclose(narrow, wide, atol=1e-5)
        grads = [torch.autograd.grad(y.square().sum(), (x, conv.weight)) for y in (narrow, wide)]
        for a, b in zip(*grads, strict=True):
            assert torch.allclose(a, b, atol=1e-4)


def test_documents_convolved_in_chunks_give_the_one_pass_values_and_gradients(monkeypatch):
    import fglab.models.gcn as gcn

    torch.manual_seed(2)
    stack = GraphConvStack(_path_laplacian(6), (4, 1), 3)
    signal = torch.rand(10, 6)
    whole = stack(signal)
    whole_grads = torch.autograd.grad(whole.square().sum(), list(stack.parameters()))
    monkeypatch.setattr(gcn, "CHUNK_SIGNALS", 6 * 3)  # 3 documents per pass: 4 passes
    chunked = stack(signal)
    chunked_grads = torch.autograd.grad(chunked.square().sum(), list(stack.parameters()))
    assert torch.allclose(chunked, whole, atol=1e-6)
    for a, b in zip(chunked_grads, whole_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
