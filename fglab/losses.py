"""The pairwise similarity loss (Kumar et al., CVPR 2016), plain and label-weighted.

L = Var(S+) + Var(S-) + lam * max(0, m - (mean(S+) - mean(S-)))

over the positive scores S+ and negative scores S- of a batch. The weighted form replaces
each mean and (population) variance by its weighted version, so a pair with weight 2 counts
as two copies of itself; with all weights equal it is exactly the plain loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _weighted_moments(scores: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    total = weights.sum()
    mean = (weights * scores).sum() / total
    var = (weights * (scores - mean) ** 2).sum() / total
    return mean, var


def weighted_pairwise_similarity_loss(
    scores: torch.Tensor,
    positive: torch.Tensor,
    weights: torch.Tensor | None = None,
    margin: float = 0.8,
    lam: float = 0.35,
) -> torch.Tensor:
    """``scores`` and boolean ``positive`` of any (same) shape; ``weights`` >= 0 per pair
    (None: all 1). Needs at least one positive and one negative."""
    positive = positive.bool()
    if weights is None:
        weights = torch.ones_like(scores)
    if not positive.any() or positive.all():
        raise ValueError(
            f"the loss needs positives and negatives; got {int(positive.sum())} positives "
            f"of {positive.numel()} pairs"
        )
    mean_pos, var_pos = _weighted_moments(scores[positive], weights[positive])
    mean_neg, var_neg = _weighted_moments(scores[~positive], weights[~positive])
    return var_pos + var_neg + lam * torch.clamp(margin - (mean_pos - mean_neg), min=0.0)


def weighted_contrastive_loss(
    scores: torch.Tensor,
    positive: torch.Tensor,
    weights: torch.Tensor | None = None,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Symmetric InfoNCE over an (n, n) score matrix of images (rows) and texts (columns)
    (van den Oord et al. 2018; with several positives per row, Khosla et al. 2020): each
    row and each column is a softmax over its pairs, scaled by ``1 / temperature``, and the
    loss is the mean negative log-probability of its positives. ``weights`` enter the
    softmax as copies (a pair of weight 2 counts twice in the denominator), so a negative
    graded hard by the fine-grained labels pushes harder; all 1 (None) is plain InfoNCE."""
    positive = positive.bool()
    logits = scores / temperature
    if weights is not None:
        logits = logits + torch.log(weights.clamp_min(1e-12))

    def one_direction(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        per_row = (log_prob * positive).sum(dim=1) / positive.sum(dim=1).clamp_min(1)
        return -per_row[positive.any(dim=1)].mean()

    return (one_direction(logits, positive) + one_direction(logits.T, positive.T)) / 2


def pairwise_similarity_loss(
    positive_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    margin: float = 0.8,
    lam: float = 0.35,
) -> torch.Tensor:
    """The plain loss on separate vectors of positive and negative scores."""
    gap = positive_scores.mean() - negative_scores.mean()
    return (
        positive_scores.var(unbiased=False)
        + negative_scores.var(unbiased=False)
        + lam * torch.clamp(margin - gap, min=0.0)
    )


def dscmr_loss(
    image_common: torch.Tensor,
    text_common: torch.Tensor,
    image_logits: torch.Tensor,
    text_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    beta: float,
) -> torch.Tensor:
    """DSCMR's objective (Zhen et al., "Deep Supervised Cross-modal Retrieval", CVPR 2019) over
    a batch of n pairs with one-hot ``labels`` (n, c):

    J1 (label space) = mean ||P u_i - y_i|| + mean ||P v_i - y_i||  (``*_logits`` = P u, P v)
    J2 (common space) = sum over (u,u), (u,v), (v,v) of mean_ij log(1 + e^T_ij) - S_ij T_ij,
        with T_ij = cos(a_i, b_j) / 2 and S_ij = 1 when i and j share a label
    J3 (modality invariance) = mean ||u_i - v_i||
    J = J1 + alpha J2 + beta J3.
    """
    labels = labels.float()
    label_space = (image_logits - labels).norm(dim=1).mean() + (
        text_logits - labels
    ).norm(dim=1).mean()
    same = labels @ labels.T
    units = (F.normalize(image_common, dim=1), F.normalize(text_common, dim=1))

    def discrimination(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        theta = (a @ b.T) / 2
        return (F.softplus(theta) - same * theta).mean()

    common = (
        discrimination(units[0], units[0])
        + discrimination(units[0], units[1])
        + discrimination(units[1], units[1])
    )
    invariance = (image_common - text_common).norm(dim=1).mean()
    return label_space + alpha * common + beta * invariance


def hardest_negative_loss(
    scores: torch.Tensor, positive: torch.Tensor, weights: torch.Tensor | None = None,
    margin: float = 0.2,
) -> torch.Tensor:
    """VSE++'s max-of-hinges (Faghri et al., BMVC 2018) over an (n, n) score matrix of
    images (rows) and texts (columns): each positive pair against the hardest negative of its
    row and of its column, ``max(0, margin + s_neg - s_pos)``, averaged over positives.
    ``weights`` scale each negative's score gap before the max (a negative graded hard
    counts as closer); None: the plain loss."""
    positive = positive.bool()
    excluded = torch.finfo(scores.dtype).min
    gaps = scores if weights is None else scores * weights
    negatives = gaps.masked_fill(positive, excluded)
    hardest_text = negatives.max(dim=1).values  # per image row
    hardest_image = negatives.max(dim=0).values  # per text column
    rows, cols = torch.nonzero(positive, as_tuple=True)
    s_pos = scores[rows, cols]
    loss = F.relu(margin + hardest_text[rows] - s_pos) + F.relu(
        margin + hardest_image[cols] - s_pos
    )
    return loss.mean() / 2


def soft_target_contrastive_loss(
    scores: torch.Tensor, positive: torch.Tensor, similarity: torch.Tensor,
    temperature: float = 0.1, target_temperature: float = 0.1, mix: float = 0.5,
) -> torch.Tensor:
    """Symmetric InfoNCE with soft targets (SoftCLIP, Gao et al. AAAI 2024; ALBEF's
    distillation): each row's target is ``(1 - mix)`` times its positives (uniform over them)
    plus ``mix`` times softmax(similarity / target_temperature) of the teacher's text-text
    similarities in [0, 1], so a near-duplicate caption gets partial credit instead of being
    pushed away as a negative. ``mix`` = 0 is plain InfoNCE."""
    logits = scores / temperature

    def one_direction(logits: torch.Tensor, positive: torch.Tensor, similarity: torch.Tensor):
        positive = positive.float()
        hard = positive / positive.sum(dim=1, keepdim=True).clamp_min(1)
        targets = (1 - mix) * hard + mix * torch.softmax(similarity / target_temperature, dim=1)
        return -(targets * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()

    # columns: the same targets read from the transposes
    return (one_direction(logits, positive, similarity)
            + one_direction(logits.T, positive.T, similarity.T)) / 2
