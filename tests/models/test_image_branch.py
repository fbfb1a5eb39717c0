from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.kernel_approximation import Nystroem
from sklearn.metrics.pairwise import rbf_kernel

from fglab.config import ModelConfig
from fglab.models.image_branch import ImageBranch
from fglab.models.kernel_map import RBFKernelMap
from fglab.models.scorer import bounded


def _features(n: int = 60, d: int = 8) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)


def test_kernel_map_replays_scikit_learns_nystroem_transform():
    x = _features()
    kernel = RBFKernelMap(8, 20, gamma=0.1).fit(x, seed=3)
    reference = Nystroem(gamma=0.1, n_components=20, random_state=3).fit(x.astype(np.float64))
    expected = reference.transform(x)
    expected = (expected - expected.mean(0)) / expected.std(0)
    with torch.no_grad():
        actual = kernel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(actual, expected, atol=2e-3)


def test_kernel_map_with_every_point_as_landmark_reproduces_the_rbf_kernel():
    x = _features(n=30)
    kernel = RBFKernelMap(8, 30, gamma=0.2).fit(x, seed=0)
    with torch.no_grad():
        mapped = kernel._map(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(mapped @ mapped.T, rbf_kernel(x, gamma=0.2), atol=1e-3)


def test_kernel_map_needs_as_many_training_images_as_landmarks():
    with pytest.raises(ValueError, match="at least 50 training images"):
        RBFKernelMap(8, 50, gamma=0.1).fit(_features(n=20), seed=0)


def test_image_branch_with_a_kernel_map_learns_its_input_map_from_training_images():
    x = _features()
    branch = ImageBranch(8, ModelConfig(embed_dim=16), n_landmarks=40)
    branch.fit_input_map(x, seed=0)
    assert branch.n_landmarks == 40
    branch.eval()
    with torch.no_grad():
        out = branch(torch.from_numpy(x))
    assert out.shape == (60, 16) and torch.isfinite(out).all()
    assert ImageBranch(8, ModelConfig(embed_dim=16)).n_landmarks == 0


def test_bounded_embeddings_keep_direction_and_grow_with_length_below_one():
    x = torch.tensor([[3.0, 4.0], [6.0, 8.0], [9.0, 12.0]])
    out = bounded(x, scale=10.0)
    lengths = out.norm(dim=-1)
    assert torch.all(lengths < 1) and torch.all(lengths[1:] > lengths[:-1])
    np.testing.assert_allclose(
        (out / lengths[:, None]).numpy(), (x / x.norm(dim=-1, keepdim=True)).numpy(), atol=1e-6
    )


def test_unknown_embedding_is_rejected():
    with pytest.raises(ValueError, match="embedding must be one of"):
        ModelConfig(embedding="softmax")


def test_auto_image_branch_uses_the_kernel_for_narrow_features_only():
    config = ModelConfig(image_kernel_landmarks=1000)
    assert config.image_landmarks(n_features=128, n_train=1738) == 1000
    assert config.image_landmarks(n_features=128, n_train=300) == 300  # no more than images
    assert config.image_landmarks(n_features=1280, n_train=1738) == 0  # CNN features: MLP
    assert ModelConfig(image_branch="kernel").image_landmarks(1280, 1738) == 1000
    assert ModelConfig(image_branch="mlp").image_landmarks(128, 1738) == 0
    with pytest.raises(ValueError, match="image_branch must be one of"):
        ModelConfig(image_branch="svm")


def test_auto_embedding_is_bounded_with_the_kernel_branch_and_unit_without():
    from fglab.models.siamese import CrossModalNetwork

    config = ModelConfig(text_branch="mlp", hidden_dim=8, embed_dim=8)
    assert CrossModalNetwork(5, 4, config, None, n_image_landmarks=3).embedding == "bounded"
    assert CrossModalNetwork(5, 4, config, None).embedding == "unit"
    fixed = ModelConfig(text_branch="mlp", hidden_dim=8, embed_dim=8, embedding="unit")
    assert CrossModalNetwork(5, 4, fixed, None, n_image_landmarks=3).embedding == "unit"


def test_input_dropout_acts_on_the_mlp_branch_in_training_only():
    x = torch.from_numpy(_features())
    config = ModelConfig(embed_dim=16, image_input_dropout=0.5, dropout=0.0)
    mlp = ImageBranch(8, config)
    assert mlp.input_dropout.p == 0.5
    mlp.eval()
    with torch.no_grad():
        assert torch.equal(mlp(x), mlp(x))
    mlp.train()
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(mlp(x), mlp(x))
    kernel = ImageBranch(8, config, n_landmarks=40)  # dropout would distort RBF distances
    assert kernel.input_dropout.p == 0.0
