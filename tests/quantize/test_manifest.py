"""Images as untrusted input: every edit of a manifest or its files is refused in one line,
and writing an image never loses the old one or leaves stale files."""

import json
import os
import signal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantize import atomic
from quantize.commands import compress_to_image
from quantize.compress import CompressSpec
from quantize.image import load_image
from quantize.manifest import digest
from quantize.model import Layer, Mlp
from quantize.run import run_image


def _model(seed=0, sizes=(24, 12, 5)):
    rng = np.random.default_rng(seed)
    return Mlp([Layer(f"fc{i + 1}", rng.normal(size=(b, a)).astype(np.float32) / np.sqrt(a),
                      rng.normal(size=b).astype(np.float32) * 0.1)
                for i, (a, b) in enumerate(zip(sizes, sizes[1:], strict=False))])


def _write(engine, out, seed=0, sizes=(24, 12, 5), **kw):
    x = np.random.default_rng(seed).random((30, sizes[0])).astype(np.float32)
    spec = CompressSpec(bits=4, sparsity=0.6, reserve_zero=engine == "eie")
    compress_to_image(_model(seed, sizes), engine, spec, out, pes=4, rows=4, cols=4,
                      calibration=x, **kw)
    return x


@pytest.fixture(scope="module", params=["eie", "systolic"])
def image(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "img"
    x = _write(request.param, out)
    return out, x


def _edit(src, dst, change, *, redigest=True):
    """Copy the image at ``src`` to ``dst`` and apply ``change(manifest, dst)``."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    m = json.loads((dst / "manifest.json").read_text())
    m = change(m, dst) or m
    if redigest and isinstance(m, dict):
        m["digest"] = digest(m)
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _first_file(m):
    return next(iter(m["layers"][0]["files"].values()))


def _outside(m, d):
    f = _first_file(m)
    (d.parent / "outside.bin").write_bytes((d / f["path"]).read_bytes())
    f["path"] = "../outside.bin"


def _dev_zero(m, d):
    _first_file(m)["path"] = "/dev/zero"


def _link_out(m, d):
    f = _first_file(m)
    (d.parent / "target.bin").write_bytes((d / f["path"]).read_bytes())
    (d / "link.bin").symlink_to(d.parent / "target.bin")
    f["path"] = "link.bin"


def _truncate(m, d):
    f = _first_file(m)
    raw = (d / f["path"]).read_bytes()
    (d / f["path"]).write_bytes(raw[: len(raw) // 2])


def _set(path, value):
    def change(m, d):
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(key):
    def change(m, d):
        del m[key]
    return change


def _toggle_output(m, d):
    fmt = m["output"]
    if fmt["format"] == "fixed":
        fmt["frac"] += 1
    else:
        fmt["zero_point"] = fmt["zero_point"] + 1 if fmt["zero_point"] < 127 else 0


# (name, change, re-digested?, what the one-line error must say)
EDITS = [
    ("path outside", _outside, True, "must match|inside the image folder"),
    ("device file", _dev_zero, True, "must match|inside the image folder"),
    ("link out", _link_out, True, "symbolic link"),
    ("truncated file", _truncate, True, "truncated or replaced"),
    ("layer out edited", _set(("layers", 0, "out"), 7), True, "shape|gives|takes"),
    ("pes edited", _set(("config", "pes"), 8), True, "config|PE|shape"),
    ("engine edited", _set(("engine",), "tpu"), True, "engine: 'tpu' is not one of"),
    ("no layers key", _drop("layers"), True, "'layers' is a required property"),
    ("empty layer list", _set(("layers",), []), True, "layers: \\[\\] should be non-empty"),
    ("top-level list", lambda m, d: [m], False, "not an nnaccel image manifest"),
    ("relu edited (digest stale)", _set(("layers", 0, "relu"), False), False,
     "edited after it was written"),
    ("output format edited (digest stale)", _toggle_output, False,
     "edited after it was written|output"),
    ("unknown config field", _set(("config", "turbo"), 1), True, "has no field turbo"),
    ("invalid config value", _set(("config", "acc_width"), -1), True, "config"),
    ("extra top-level key", _set(("extra",), 1), True, "Additional properties"),
    ("negative shape", _set(("layers", 0, "in"), -3), True, "layers\\[0\\].in"),
]


@pytest.mark.parametrize("name,change,redigest,message", EDITS, ids=[e[0] for e in EDITS])
def test_edited_manifest_refused(image, tmp_path, name, change, redigest, message):
    src, _ = image
    d = _edit(src, tmp_path / "img", change, redigest=redigest)
    with pytest.raises((ValueError, OSError), match=message) as e:
        load_image(d)
    assert "\n" not in str(e.value)


def test_frac_edit_with_fresh_digest_is_checked_against_the_config(image, tmp_path):
    src, _ = image
    m = json.loads((src / "manifest.json").read_text())
    if m["engine"] != "eie":
        pytest.skip("fixed-point formats are EIE's")
    d = _edit(src, tmp_path / "img", _set(("output", "frac"), m["output"]["frac"] + 1))
    with pytest.raises(ValueError, match="'output' must be the config's activation format"):
        load_image(d)


def test_systolic_zero_point_edit_with_fresh_digest_breaks_the_chain(image, tmp_path):
    src, _ = image
    m = json.loads((src / "manifest.json").read_text())
    if m["engine"] != "systolic":
        pytest.skip("int8 zero points are the systolic engine's")
    zp = m["layers"][1]["input"]["zero_point"]
    d = _edit(src, tmp_path / "img", _set(("layers", 1, "input", "zero_point"),
                                          zp + 1 if zp < 127 else zp - 1))
    with pytest.raises(ValueError, match="input quantization .* is not layer fc1's output"):
        load_image(d)


def test_non_json_constants_refused(image, tmp_path):
    src, _ = image
    d = _edit(src, tmp_path / "img", lambda m, d: None)
    text = (d / "manifest.json").read_text()
    (d / "manifest.json").write_text(text.replace('"in": ', '"in": Infinity, "x": ', 1))
    with pytest.raises(ValueError, match="not valid JSON .*Infinity is not a JSON number"):
        load_image(d)


def test_oversized_manifest_refused_before_parsing(image, tmp_path):
    src, _ = image
    d = _edit(src, tmp_path / "img", lambda m, d: None)
    with open(d / "manifest.json", "ab") as f:
        f.truncate(65 << 20)
    with pytest.raises(ValueError, match="larger than any nnaccel manifest"):
        load_image(d)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_manifest_mutations_never_crash(image, tmp_path_factory, data):
    """A random edit of any JSON value is either refused with a ValueError/OSError or the
    image loads (an edit to a field that does not change results, re-digested)."""
    src, x = image
    m = json.loads((src / "manifest.json").read_text())
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node[:6]):
                walk(v, path + (i,))
    walk(m, ())
    path = data.draw(st.sampled_from(paths[1:]))
    value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                                st.floats(allow_nan=False, allow_infinity=False),
                                st.text(max_size=12),
                                st.lists(st.integers(-3, 70), max_size=3),
                                st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)))
    redigest = data.draw(st.booleans())
    d = tmp_path_factory.mktemp("mut") / "img"
    _edit(src, d, _set(path, value), redigest=redigest)
    try:
        loaded = load_image(d)
    except (ValueError, OSError) as e:
        assert "\n" not in str(e)
        return
    run_image(loaded, x[:3], "golden")      # whatever loads must also run


@pytest.fixture(scope="module")
def graph_image(tmp_path_factory):
    """A graph image (format 3) of a small CNN with a residual Add and a GELU."""
    from quantize.compress_graph import compress_graph
    from quantize.graph import Graph, Node
    from quantize.graph_image import graph_config, write_graph_image
    from quantize.graph_quant import quantize_graph
    rng = np.random.default_rng(3)
    conv = {"weight": rng.normal(size=(3, 3, 3, 3)) / 5, "bias": rng.normal(size=3) / 10}
    g = Graph("x", (3, 4, 4), [
        Node("c1", "Conv2d", "x", "c1", {"pads": (1, 1, 1, 1)}, conv),
        Node("r1", "Relu", "c1", "r1"),
        Node("add", "Add", ("r1", "x"), "add"),
        Node("pool", "AvgPool2d", "add", "pool", {"kernel": (2, 2), "stride": (2, 2)}),
        Node("flat", "Flatten", "pool", "flat"),
        Node("fc", "Linear", "flat", "fc", {}, {"weight": rng.normal(size=(6, 12)) / 3,
                                                "bias": np.zeros(6)}),
        Node("gelu", "Gelu", "fc", "gelu")])
    x = rng.normal(size=(20, 3, 4, 4))
    qg = quantize_graph(compress_graph(g, 0.3, 4).graph, x)
    cg = compress_graph(g, 0.3, 4)
    out = tmp_path_factory.mktemp("graph") / "img"
    write_graph_image(cg, qg, graph_config(qg, 4, 4), out)
    return out, x


def test_graph_image_round_trip_and_version_gate(graph_image, tmp_path):
    from quantize.run import run_graph_image
    src, x = graph_image
    loaded = load_image(src)
    assert loaded.manifest["format_version"] == 3
    assert run_graph_image(loaded, x[:2]).output.shape == (2, 6)
    d = _edit(src, tmp_path / "v2", _set(("format_version",), 2))
    with pytest.raises(ValueError, match=r"\(top level\): .*"):
        load_image(d)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_graph_manifest_mutations_never_crash(graph_image, tmp_path_factory, data):
    """As for MLP images: a random edit of a graph manifest is refused in one line, or the
    image loads and runs."""
    from quantize.run import run_graph_image
    src, x = graph_image
    m = json.loads((src / "manifest.json").read_text())
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node[:8]):
                walk(v, path + (i,))
    walk(m["graph"], ("graph",))
    path = data.draw(st.sampled_from(paths[1:]))
    value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                                st.integers(-3, 12), st.floats(allow_nan=False,
                                                               allow_infinity=False),
                                st.text(max_size=12), st.sampled_from(["c1", "fc", "x", "r1"]),
                                st.lists(st.integers(-3, 70), max_size=3),
                                st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)))
    d = tmp_path_factory.mktemp("gmut") / "img"
    _edit(src, d, _set(path, value), redigest=True)
    try:
        loaded = load_image(d)
    except (ValueError, OSError) as e:
        assert "\n" not in str(e)
        return
    try:
        run_graph_image(loaded, x[:2], "golden")      # whatever loads must also run
    except ValueError as e:
        assert "\n" not in str(e)


def test_failed_write_keeps_the_old_image(tmp_path, monkeypatch):
    out = tmp_path / "img"
    x = _write("eie", out)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    import quantize.eie_engine as eie_module

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(eie_module, "_bias", boom)
    with pytest.raises(KeyboardInterrupt):
        _write("eie", out, seed=1)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["img"]       # no partial folder left
    run_image(load_image(out), x, "golden")


def test_recompress_smaller_model_leaves_no_stale_files(tmp_path):
    out = tmp_path / "img"
    _write("systolic", out, sizes=(24, 12, 8, 5))
    assert (out / "fc3.weight.bin").exists()
    _write("systolic", out, sizes=(24, 12, 5))
    names = {f.name for f in out.iterdir()}
    m = load_image(out).manifest
    listed = {f["path"] for spec in m["layers"] for f in spec["files"].values()}
    assert names == listed | {"manifest.json", m["report"]["path"]}


def test_non_image_folder_needs_force(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty and not an nnaccel image.*--force"):
        _write("eie", out)
    assert (out / "notes.txt").read_text() == "keep me"
    _write("eie", out, force=True)
    assert not (out / "notes.txt").exists()
    load_image(out)


def test_output_never_overwrites_an_input(tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(b"")
    with pytest.raises(ValueError, match="would overwrite model"):
        atomic.check_outputs([("-o", tmp_path)], [("model", model)])
    with pytest.raises(ValueError, match="would overwrite --input"):
        atomic.check_outputs([("-o", model)], [("--input", model)])
    atomic.check_outputs([("-o", tmp_path / "out")], [("model", model)])


def test_interrupt_after_commit_is_held_back():
    atomic.commit_signals()
    os.kill(os.getpid(), signal.SIGINT)
    assert atomic.release_signals() is True
    assert atomic.release_signals() is False
