"""The position-embedding figure: colours that show the table's structure (not washed out by a few outliers),
and the cosine similarity between positions beside it."""

from __future__ import annotations

import numpy as np

from pipelines.attention import PositionKind, PositionTable, position_table
from pipelines.attention.figures import cosine_similarity, positions, robust_bound
from pipelines.messages import Msg


def coloured_share(fig, trace: int = 0) -> float:
    """The share of cells whose colour is visibly away from the scale's white middle (|z| > 10% of the bound)."""
    heat = fig.data[trace]
    z = np.asarray(heat.z, dtype=float)
    return float((np.abs(z) > 0.1 * heat.zmax).mean())


def learned_with_outliers(seed: int = 0) -> np.ndarray:
    """A BERT-like learned table: small smooth values plus a handful of huge ones (BERT's reach ~30x)."""
    rng = np.random.default_rng(seed)
    positions_ = np.arange(128)[:, None]
    table = 0.02 * np.sin(positions_ / (4 + np.arange(64)[None, :])) + rng.normal(0, 0.005, (128, 64))
    table[0, :4] = [1.9, -1.7, 1.5, -1.2]
    return table.astype(np.float32)


def test_learned_table_is_not_washed_out_by_outliers() -> None:
    table = PositionTable(PositionKind.LEARNED, learned_with_outliers(), Msg.of("attention.pos.none"))
    fig = positions(table)
    heat = fig.data[0]
    assert heat.zmax == -heat.zmin and heat.zmax < 0.1  # the bound follows the bulk, not the 1.9 outlier
    assert coloured_share(fig) > 0.5  # with the max as bound, under 1% of the cells were visibly coloured
    np.testing.assert_allclose(np.asarray(heat.z)[0, 0], 1.9, rtol=1e-6)  # hover still shows exact values


def test_similarity_view_beside_the_table() -> None:
    table = learned_with_outliers()
    fig = positions(PositionTable(PositionKind.LEARNED, table, Msg.of("attention.pos.none")))
    assert len(fig.data) == 2
    similarity = np.asarray(fig.data[1].z, dtype=float)
    assert similarity.shape == (128, 128)
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-5)
    np.testing.assert_allclose(similarity, similarity.T, atol=1e-6)
    assert (fig.data[1].zmin, fig.data[1].zmax) == (-1.0, 1.0)
    assert "Cosine similarity" in " ".join(a.text for a in fig.layout.annotations)
    np.testing.assert_allclose(cosine_similarity(np.eye(3)), np.eye(3))


def test_robust_bound_handles_edge_cases() -> None:
    assert robust_bound(np.zeros((4, 4))) == 1.0
    assert robust_bound(np.array([[np.nan, 2.0]])) == 2.0
    assert robust_bound(np.full((10, 10), -0.5)) == 0.5


def test_minilm_position_table_shows_its_structure(ctx) -> None:
    table = position_table(ctx.manager.load("minilm-l6", attn_implementation="eager").model)
    assert table.kind == PositionKind.LEARNED and table.table.shape == (512, 384)
    fig = positions(table)
    assert float(np.abs(table.table).max()) > 10 * fig.data[0].zmax  # MiniLM has outliers far above the bound
    assert coloured_share(fig) > 0.5
    assert "512 positions x 384 dims" in fig.layout.title.text
    chinese = positions(table, lang="zh-CN")
    assert "位置编码" in chinese.layout.title.text and chinese.layout.xaxis.title.text == "维度"


def test_tables_without_values_give_a_message_figure() -> None:
    fig = positions(PositionTable(PositionKind.RELATIVE, None, Msg.of("attention.pos.relative")), lang="zh-CN")
    assert not fig.data and "相对位置偏置" in fig.layout.annotations[0].text
    assert fig.layout.title.text == "位置编码：相对"
