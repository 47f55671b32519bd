"""The backend table (speedy.backends): its contract, and that compile, runtime and auto read it."""

from __future__ import annotations

import ast
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402

from speedy import backends  # noqa: E402
from speedy.artifacts import read_manifest  # noqa: E402
from speedy.controls import DEFAULT_CONTROLS  # noqa: E402
from speedy.errors import InputError, MissingExtraError, ModelError  # noqa: E402
from speedy.runtime import RuntimeOptions, isa_warnings, load_runner  # noqa: E402
from speedy.stages.compile import CompileConfig, compile_artifact  # noqa: E402

SPEEDY = Path(backends.__file__).parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random voice as torch and ONNX artifacts (source formats of every backend)."""
    root = tmp_path_factory.mktemp("tiny")
    torch_dir = tiny_voice.make_torch_artifact(root / "torch")
    return {"torch": torch_dir, "onnx": tiny_voice.make_onnx_artifact(torch_dir, root / "onnx")}


def test_every_reference_in_the_table_resolves_to_a_function() -> None:
    """Compilers, preflights, option checks, loaders and graph loaders name importable functions (their
    modules import no optional library at import time), and formats and backends refer to each other."""
    names = {b.name for b in backends.BACKENDS}
    assert len(names) == len(backends.BACKENDS)
    for b in backends.BACKENDS:
        for target in (b.compiler, b.preflight, b.validate):
            if target:
                assert callable(backends.resolve(target)), (b.name, target)
        assert backends.fmt(b.writes) is not None, f"{b.name} writes {b.writes}, which no runtime loads"
        assert b.precisions and b.precisions[0] == "fp32"
        assert not b.levels or b.default_level in b.levels
        assert set(b.precision_needs) <= set(b.precisions)
        assert all(f in backends.ISA_FLAGS for needs in b.precision_needs.values() for f in needs)
    for f in backends.FORMATS:
        assert f.backend in names
        assert callable(backends.resolve(f.loader))
        if f.graph_loader:
            assert callable(backends.resolve(f.graph_loader))


def _usable(b: backends.Backend) -> str | None:
    """Why `b` cannot run here (None: it can)."""
    if "cuda" in b.needs:
        try:
            import torch

            if not torch.cuda.is_available():
                return "no CUDA GPU on this machine (torch.cuda.is_available() is False)"
        except ImportError:
            return "no torch"
    return None


@pytest.mark.parametrize("name", backends.NAMES)
def test_each_backend_round_trips_a_tiny_model(name: str, tiny: dict[str, Path], tmp_path: Path) -> None:
    """Preflight, compiler and loader of each record: the tiny voice compiled at the record's default
    precision loads through the format's loader and matches its source (the compile's own parity check
    passes, and the runners agree with the source's within 1e-4). Skipped only where the hardware is
    missing (TensorRT without a GPU)."""
    b = backends.backend(name)
    why = _usable(b)
    if why:
        pytest.skip(why)
    source = tiny[b.reads[0]]
    out = tmp_path / name
    m = compile_artifact(source, out, CompileConfig(backend=name, threads=1))
    assert {c.format for c in m.components.values()} == {b.writes}
    assert m.lineage[-1].stage == "compile" and m.lineage[-1].options["backend"] == name
    src = read_manifest(source)
    opts = RuntimeOptions(threads=1)
    ids = np.array([[3, 7, 11, 5, 2, 9]], dtype=np.int64)
    want_mel, want_dur = load_runner(src, "acoustic", source, opts)(ids, DEFAULT_CONTROLS)
    got_mel, got_dur = load_runner(m, "acoustic", out, opts)(ids, DEFAULT_CONTROLS)
    np.testing.assert_array_equal(got_dur, want_dur)
    np.testing.assert_allclose(got_mel, want_mel, atol=1e-4)
    mel = want_mel.astype(np.float32)
    want = load_runner(src, "vocoder", source, opts)(mel)
    got = load_runner(m, "vocoder", out, opts)(mel)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_options_are_checked_against_the_record() -> None:
    """A precision or level a backend lacks is refused in one line that names a backend taking it."""
    with pytest.raises(InputError, match="needs --backend openvino; the onnxruntime backend takes fp32"):
        CompileConfig(precision="bf16")
    with pytest.raises(InputError, match="--backend tensorrt or openvino|--backend openvino or tensorrt"):
        CompileConfig(backend="torch", precision="int8")
    with pytest.raises(InputError, match="the openvino backend takes no --opt-level"):
        CompileConfig(backend="openvino", opt_level="all")
    with pytest.raises(InputError, match="--int8-calib is only used with --backend tensorrt --precision int8"):
        CompileConfig(backend="openvino", precision="int8", int8_calib=Path("x"))
    assert CompileConfig(backend="openvino").level == ""
    assert CompileConfig(backend="tensorrt", precision="fp16").level == "3"


def test_missing_isa_names_the_flags() -> None:
    assert backends.missing_isa(("avx512_bf16", "amx_bf16"), ("avx2", "avx512_bf16")) is None
    assert backends.missing_isa((), ("avx2",)) is None
    line = backends.missing_isa(("avx512_bf16", "amx_bf16"), ("avx2", "fma"))
    assert line == "needs a CPU with AVX512_BF16 or AMX_BF16; this one has avx2, fma"


def test_bf16_is_refused_before_any_work_on_a_cpu_without_it(
    tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record's precision_needs, checked by compile itself: one line, exit 2, no folder."""
    monkeypatch.setattr(backends, "cpu_isa", lambda: ("avx2", "fma"))
    out = tmp_path / "bf16"
    with pytest.raises(InputError) as e:
        compile_artifact(tiny["onnx"], out, CompileConfig(backend="openvino", precision="bf16"))
    assert "AVX512_BF16 or AMX_BF16" in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 2
    assert not out.exists() and not list(tmp_path.iterdir())


def test_isa_warnings_name_what_the_cpu_lacks(tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A bf16 component on an AVX2 CPU, and an auto choice measured with VNNI read on a CPU without it."""
    import speedy.runtime as runtime

    m = read_manifest(tiny["onnx"])
    voc = m.components["vocoder"]
    m = replace(
        m,
        components={**m.components, "vocoder": replace(voc, extra={**dict(voc.extra), "needs_isa": ["avx512_bf16"]})},
        extra={**dict(m.extra), "quantize": {"isa": ["avx2", "avx512_vnni"]}},
    )
    monkeypatch.setattr(runtime, "missing_isa", lambda any_of: backends.missing_isa(any_of, ("avx2",)))
    monkeypatch.setattr(runtime, "cpu_isa", lambda: ("avx2",))
    lines = isa_warnings(m)
    assert len(lines) == 2
    assert lines[0].startswith("vocoder (onnx fp32) needs a CPU with AVX512_BF16")
    assert "avx512_vnni" in lines[1] and "run the search again" in lines[1]
    monkeypatch.setattr(runtime, "missing_isa", lambda any_of: None)
    monkeypatch.setattr(runtime, "cpu_isa", lambda: ("avx2", "avx512_vnni", "avx512_bf16"))
    assert isa_warnings(m) == []


def test_help_lists_every_backend() -> None:
    from click.testing import CliRunner

    from speedy.cli import main

    out = CliRunner().invoke(main, ["compile", "--help"]).output
    for b in backends.BACKENDS:
        assert f"{b.name} " in out and b.name in out.split("--backend [", 1)[1].split("]", 1)[0]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, function-level imports included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_runtime_never_imports_stages_and_the_table_imports_neither() -> None:
    for path in sorted((SPEEDY / "runtime").glob("*.py")):
        bad = {m for m in _imports(path) if m.startswith("speedy.stages")}
        assert not bad, f"{path.name} imports {bad}"
    assert not {m for m in _imports(SPEEDY / "backends.py") if m.startswith(("speedy.stages", "speedy.runtime"))}


def test_compile_has_no_backend_branches() -> None:
    """compile.py compares no value with a backend's name: what differs between backends is in the table."""
    tree = ast.parse((SPEEDY / "stages" / "compile.py").read_text(encoding="utf-8"))
    names = set(backends.NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            consts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
            assert not names & set(map(str, consts)), ast.unparse(node)
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            assert not names & set(map(str, keys)), ast.unparse(node)


def test_openvino_missing_is_one_line(tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the openvino package, compile names the extra (exit 3) and writes nothing."""
    import builtins

    real = builtins.__import__

    def no_openvino(name: str, *args, **kwargs):
        if name == "openvino" or name.startswith(("openvino.", "nncf")):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    for mod in [m for m in sys.modules if m == "openvino" or m.startswith("openvino.")]:
        monkeypatch.delitem(sys.modules, mod)
    out = tmp_path / "ov"
    with pytest.raises((MissingExtraError, ModelError)) as e:
        compile_artifact(tiny["onnx"], out, CompileConfig(backend="openvino"))
    assert "openvino" in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()


# ---- auto across backends ------------------------------------------------------------------------


def _cand(component: str, recipe: str, seconds: float, mcd: float, backend: str = "onnxruntime"):
    from speedy.stages.auto import Candidate

    return Candidate(component=component, recipe=recipe, seconds=seconds, backend=backend, mcd_db=mcd,
                     duration_match=None, size_bytes=1, within_budget=True)


def test_auto_breaks_near_ties_by_fidelity() -> None:
    """Pairs within `tie` of the fastest left go by summed MCD; a clearly faster pair stays first."""
    from speedy.stages.auto import _tie_order

    voc = _cand("vocoder", "fp32", 1.0, 0.0)
    ort = (_cand("acoustic", "int8-hybrid", 1.00, 1.4), voc)
    ov = (_cand("acoustic", "openvino-bf16", 1.02, 0.9, "openvino"), voc)
    slow = (_cand("acoustic", "fp32", 1.5, 0.0), voc)
    assert _tie_order([ort, ov, slow], 0.03) == [ov, ort, slow]  # 2.02 vs 2.00 s: a tie, fidelity decides
    assert _tie_order([ort, ov, slow], 0.0) == [ort, ov, slow]
    fast = (_cand("acoustic", "int8-static", 0.5, 2.0), voc)
    assert _tie_order([fast, ort, ov], 0.03)[0] == fast  # 25 % faster is no tie


def test_auto_backends_must_be_known_and_include_onnxruntime() -> None:
    from speedy.stages.auto import AutoBudget

    with pytest.raises(InputError, match="unknown backend"):
        AutoBudget(backends=("onnxruntime", "tflite"))
    with pytest.raises(InputError, match="must include onnxruntime"):
        AutoBudget(backends=("openvino",))
    assert AutoBudget(backends=("onnxruntime", "openvino")).backends == ("onnxruntime", "openvino")


@pytest.mark.integration
def test_auto_places_components_on_either_backend(default_onnx: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`--recipe auto --backends onnxruntime,openvino` on the real voice, narrowed to FP32 on both backends
    (ORT's lossy recipes and OpenVINO's bf16 / int8 are measured elsewhere; here the plumbing): OpenVINO's
    candidates are measured per component beside ORT's, the manifest records the CPU flags, and whichever
    backend each component lands on, the written artifact loads and speaks."""
    pytest.importorskip("openvino")
    import speedy.stages.auto as auto
    from speedy.synth import Synthesizer

    monkeypatch.setattr(auto, "ACOUSTIC_RECIPES", ("fp32",))
    monkeypatch.setattr(auto, "VOCODER_RECIPES", ("fp32",))
    real = auto.backend
    monkeypatch.setattr(auto, "backend", lambda name: replace(real(name), precisions=("fp32",)))
    out = tmp_path / "auto-ov"
    budget = auto.AutoBudget(backends=("onnxruntime", "openvino"), check_sentences=2, repeat=1, threads=2,
                             calib_sentences=4, min_gain=0.0)
    m = auto.search(default_onnx, out, budget)
    report = m.extra["quantize"]
    got = {(c["component"], c["recipe"]): c for c in report["candidates"]}
    assert set(got) == {(c, r) for c in ("acoustic", "vocoder") for r in ("fp32", "openvino-fp32")}
    for comp in ("acoustic", "vocoder"):
        ov = got[(comp, "openvino-fp32")]
        assert ov["backend"] == "openvino" and ov["seconds"] > 0 and ov["mcd_db"] < 0.1, ov
    assert report["isa"] == list(backends.cpu_isa())
    for comp, recipe in report["chosen"].items():
        c = m.components[comp]
        assert c.extra["auto_recipe"] == recipe
        assert c.format == ("openvino" if recipe.startswith("openvino") else "onnx")
        assert (out / c.file).is_file()
    audio = Synthesizer.load(out, threads=2).synthesize("你好。").audio
    assert audio.size > 1000 and np.isfinite(audio).all()
