"""``fglab features NAME`` on a tiny data set with one truncated and one missing image."""

from __future__ import annotations

from fglab.cli import main
from tests.data.fixtures import write_dataset, write_image


def test_features_prints_every_failed_image_with_its_id(tmp_path, capsys):
    train = [("t1", "i1", "1"), ("t2", "i2", "2"), ("t3", "i3", "1"), ("t4", "i4", "2")]
    test = [("t5", "i5", "1"), ("t6", "i6", "2")]
    texts = {f"t{i}": f"text number {i} about art and sport" for i in range(1, 7)}
    root = write_dataset(tmp_path / "data" / "tiny", train, test, texts, text_ext=".txt")
    for image_id, category in [("i1", "art"), ("i2", "sport"), ("i3", "art"), ("i5", "art"),
                               ("i6", "sport")]:
        write_image(root / "images" / category / f"{image_id}.jpg", size=(40, 40))
    truncated = root / "images" / "art" / "i3.jpg"
    write_image(truncated, size=(300, 300))
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    argv = ["--data-root", str(tmp_path / "data"), "features", "tiny",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "missing_image: i4" in out  # the loader skipped the pair without an image
    assert "[train] image i3 (text t3): unreadable" in out
    assert "tiny train: 3 images -> 1280-d" in out and "1 failed" in out
    assert "tiny test: 2 images" in out
    assert main(argv) == 0  # second run: from the cache, the failure reported again
    assert "[train] image i3 (text t3)" in capsys.readouterr().out
