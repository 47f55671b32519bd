"""Reading ModelScope Sambert-HifiGan folders: layout, checkpoint choice, and one-line errors on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sambert_fixture import write_sambert_folder

from speedy.errors import ModelError
from speedy.families.sambert.source import list_voices, load_sambert, read_voice

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sambert_folder(tmp_path_factory.mktemp("sambert") / "model", voices=("zhitian_emo", "zhizhe_emo"))


@pytest.fixture()
def folder(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the small two-voice folder, free to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "model"))


def _one_line(exc: pytest.ExceptionInfo[ModelError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and exc.value.exit_code == 3
    return text


def _edit_ckpt(path: Path, edit) -> None:  # edit: Callable[[dict], None]
    ckpt = torch.load(path, weights_only=False)
    edit(ckpt)
    torch.save(ckpt, path)


def test_voices_and_default(folder: Path) -> None:
    """voices.json order is kept; the first voice is the default; configs and audio are parsed."""
    assert list_voices(folder) == ["zhitian_emo", "zhizhe_emo"]
    info = read_voice(folder)
    assert info.name == "zhitian_emo" and info.speakers == ["F7"] and info.has_mask
    assert info.audio.sample_rate == 16000 and info.audio.hop_size == 200 and info.audio.n_mels == 80
    assert read_voice(folder, "zhizhe_emo").am_checkpoint.name == "checkpoint_980000.pth"


def test_highest_checkpoint_is_loaded(folder: Path) -> None:
    """Of checkpoint_N.pth files the highest N wins (numerically, not as text)."""
    ckpt = folder / "voices" / "zhitian_emo" / "am" / "ckpt"
    shutil.copy(ckpt / "checkpoint_980000.pth", ckpt / "checkpoint_99999.pth")
    (ckpt / "checkpoint_980000.pth").rename(ckpt / "checkpoint_1200000.pth")
    (ckpt / "notes.txt").write_text("x")
    assert read_voice(folder).am_checkpoint.name == "checkpoint_1200000.pth"


def test_vocab_sizes_come_from_checkpoint(folder: Path) -> None:
    """Embedding shapes set the vocabulary sizes (e.g. a legacy table one entry shorter)."""
    path = folder / "voices" / "zhitian_emo" / "am" / "ckpt" / "checkpoint_980000.pth"

    def shrink(ckpt: dict) -> None:
        ckpt["model"]["emo_tokenizer.weight"] = ckpt["model"]["emo_tokenizer.weight"][:35]
        ckpt["model"]["text_encoder.sy_emb.weight"] = ckpt["model"]["text_encoder.sy_emb.weight"][:146]

    _edit_ckpt(path, shrink)
    cfg = load_sambert(folder).acoustic.config
    assert (cfg.emotion, cfg.sy, cfg.tone) == (35, 146, 10)


def _same_acoustic(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Identical state dicts: same keys (buffers included) and bit-equal tensors."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_missing_fixed_tables_are_tolerated(folder: Path, pristine: Path) -> None:
    """Only the position tables may be absent; they are recomputed to exactly the stored values."""
    path = folder / "voices" / "zhitian_emo" / "am" / "ckpt" / "checkpoint_980000.pth"
    keys = ("text_encoder.ling_enc.position_enc.position_enc", "variance_adaptor.dur_position_encoder.inv_timescales")

    def drop(ckpt: dict) -> None:
        for k in keys:
            del ckpt["model"][k]

    _edit_ckpt(path, drop)
    loaded = load_sambert(folder).acoustic
    _same_acoustic(loaded, load_sambert(pristine).acoustic)
    table, inv = (loaded.state_dict()[k].numpy() for k in keys)
    want_table, want_inv = _kantts_tables(table.shape[1], table.shape[2], inv.shape[0])
    np.testing.assert_allclose(table[0], want_table, rtol=0, atol=1e-6)
    np.testing.assert_allclose(inv, want_inv, rtol=1e-6)


def _kantts_tables(n_position: int, depth: int, dur_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The two fixed tables as KAN-TTS's positions.py defines them, written independently in numpy.

    SinusoidalPositionEncoder: angle(pos, j) = pos / 10000 ** (j / (depth / 2 - 1)) for pos = 1..n and
    j < depth // 2, sin in the first half and cos in the second. DurSinusoidalPositionEncoder:
    inv_timescales[i] = 10000 ** (2 * (i // 2) / depth).
    """
    angle = np.array([[pos / np.power(10000, j / float(depth / 2 - 1)) for j in range(depth // 2)]
                      for pos in range(1, n_position + 1)])
    table = np.zeros((n_position, depth))
    table[:, : depth // 2] = np.sin(angle)
    table[:, depth // 2:] = np.cos(angle)
    inv = np.array([np.power(10000, 2 * (i // 2) / dur_depth) for i in range(dur_depth)])
    return table.astype(np.float32), inv.astype(np.float32)


def test_training_only_alignment_keys_are_dropped(folder: Path, pristine: Path) -> None:
    """MAS checkpoints carry align_attention.* (training only); they are ignored, nothing else is."""
    path = folder / "voices" / "zhitian_emo" / "am" / "ckpt" / "checkpoint_980000.pth"
    _edit_ckpt(path, lambda c: c["model"].update({"align_attention.key_proj.0.conv.weight": torch.zeros(2, 2, 3)}))
    loaded = load_sambert(folder).acoustic
    assert not any(k.startswith("align_attention.") for k in loaded.state_dict())
    _same_acoustic(loaded, load_sambert(pristine).acoustic)
    _edit_ckpt(path, lambda c: c["model"].update({"not_align.weight": torch.zeros(2)}))
    with pytest.raises(ModelError, match="not_align.weight") as exc:  # only the align_attention prefix is dropped
        load_sambert(folder)
    _one_line(exc)


def test_not_a_model_folder(tmp_path: Path) -> None:
    """A missing path, a file, or a folder without voices/voices.json are one-line errors."""
    with pytest.raises(ModelError, match="is not a folder"):
        load_sambert(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ModelError, match="is not a folder"):
        load_sambert(tmp_path / "f")
    with pytest.raises(ModelError, match="not a Sambert-HifiGan model folder") as exc:
        load_sambert(tmp_path)
    _one_line(exc)


def test_legacy_layout_is_named(tmp_path: Path) -> None:
    """The 2022 layout (voices.zip, am/pytorch_model.bin) is refused by name."""
    (tmp_path / "am").mkdir()
    (tmp_path / "am" / "pytorch_model.bin").write_bytes(b"x")
    (tmp_path / "voices.zip").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"legacy 2022 .*voices\.zip, am/pytorch_model\.bin") as exc:
        load_sambert(tmp_path)
    _one_line(exc)


def test_missing_voice(folder: Path) -> None:
    """An unknown voice names the available ones."""
    with pytest.raises(ModelError, match=r"voice 'zhiyan_emo' not found .*available: zhitian_emo, zhizhe_emo") as exc:
        load_sambert(folder, "zhiyan_emo")
    _one_line(exc)


def test_key_and_shape_mismatch_named(folder: Path) -> None:
    """Renamed keys and wrong shapes are reported by name (first few)."""
    path = folder / "voices" / "zhitian_emo" / "am" / "ckpt" / "checkpoint_980000.pth"

    def damage(ckpt: dict) -> None:
        sd = ckpt["model"]
        sd["mel_postnet.fc.weightX"] = sd.pop("mel_postnet.fc.weight")
        sd["mel_postnet.fc.bias"] = torch.zeros(3)

    _edit_ckpt(path, damage)
    with pytest.raises(ModelError) as exc:
        load_sambert(folder)
    text = _one_line(exc)
    assert "missing: mel_postnet.fc.weight" in text and "unexpected: mel_postnet.fc.weightX" in text
    assert "mel_postnet.fc.bias (3,) != (80,)" in text and "checkpoint_980000.pth" in text


def test_vocoder_weight_norm_pair_broken(folder: Path) -> None:
    """A weight_g without its weight_v is a named error."""
    path = folder / "voices" / "zhitian_emo" / "voc" / "ckpt" / "checkpoint_1.pth"
    _edit_ckpt(path, lambda c: c["model"]["generator"].pop("conv_post.conv1d.weight_v"))
    with pytest.raises(ModelError, match="conv_post.conv1d.weight_g has no matching"):
        load_sambert(folder)


def test_truncated_checkpoint(folder: Path) -> None:
    """A truncated checkpoint is a one-line 'truncated or corrupt' error."""
    path = folder / "voices" / "zhitian_emo" / "voc" / "ckpt" / "checkpoint_1.pth"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated or corrupt") as exc:
        load_sambert(folder)
    _one_line(exc)


def test_missing_checkpoint(folder: Path) -> None:
    """An empty ckpt folder is named."""
    for p in (folder / "voices" / "zhitian_emo" / "am" / "ckpt").iterdir():
        p.unlink()
    with pytest.raises(ModelError, match=r"am/ckpt: no checkpoint_<N>\.pth"):
        load_sambert(folder)


@pytest.mark.parametrize(
    ("part", "change", "message"),
    [
        ("am", {"SE": True}, "speaker-embedding"),
        ("am", {"NSF": True, "num_mels": 82}, "NSF"),
        ("am", {"using_byte": True}, "byte-input"),
        ("am", {"FP": True}, "filled-pause"),
        ("voc", {"out_channels": 4}, "PQMF"),
        ("voc", {"nsf_params": {"nb_harmonics": 7, "sampling_rate": 16000}}, "NSF"),
    ],
)
def test_unsupported_variants(folder: Path, part: str, change: dict, message: str) -> None:
    """SE, NSF, byte, filled-pause and PQMF variants are refused in one line naming the variant."""
    path = folder / "voices" / "zhitian_emo" / part / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    key = "KanTtsSAMBERT" if part == "am" else "Generator"
    cfg["Model"][key]["params"].update(change)
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ModelError, match=message) as exc:
        load_sambert(folder)
    assert "not supported" in _one_line(exc)
