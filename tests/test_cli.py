"""The `nlviz` command line as a whole: dispatch, fast --help, exit codes, `nlviz models -v` on
every registered architecture (`nlviz attend`/`compare`: test_cli_attend.py; `zoo`/`download`:
test_zoo.py; `info`: test_checkpoints_common.py)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest

from nlviz import cli
from nlviz.models import PROBE_STAGES, families, family_of, get_config, list_models


def expected_blocks(cfg) -> list[str]:
    """Block names from the config alone (independent of building the network)."""
    if hasattr(cfg, "nonlocal_blocks"):  # ResNet3dConfig: residual block indices per stage res2..res5
        return [f"res{s}.{i}.nl" for s, idx in enumerate(cfg.nonlocal_blocks, start=2) for i in idx]
    return [f"{stage}.nl" for stage in cfg.stages]  # InceptionI3dConfig: a probe after each stage


@pytest.fixture(scope="module")
def models_verbose() -> dict[str, list[str]]:
    """`nlviz models -v`, run once: {architecture: its indented lines}."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["models", "-v"]) == 0
    sections: dict[str, list[str]] = {}
    for line in out.getvalue().splitlines():
        if line.startswith("    "):
            sections[name].append(line.strip())
        else:
            name = line.split()[0]
            sections[name] = []
    return sections


NL_FAMILIES = ("resnet_nl", "tiny_i3d", "i3d_inception")  # the families whose blocks are non-local blocks/probes


@pytest.mark.parametrize("name", [n for n in list_models() if family_of(n).name in NL_FAMILIES])
def test_models_verbose_lists_every_attention_block_of_every_architecture(models_verbose, name):
    cfg, _ = get_config(name)
    lines = models_verbose[name]
    names = expected_blocks(cfg)
    assert len(names) == cfg.num_nonlocal
    if not names:
        assert lines == ["no attention blocks"]
        return
    assert [line.split()[0] for line in lines] == names
    for line in lines:
        kind, settings = line.split(None, 1)[1].split(": ")
        assert kind == "NonLocalBlock"  # every registered default network's blocks are trained NL blocks
        assert settings == f"{cfg.nonlocal_cfg.pairwise}, {cfg.nonlocal_cfg.dims}"


@pytest.mark.parametrize("name", list_models())
def test_models_verbose_lists_each_family_s_block_metadata(models_verbose, name):
    """Every architecture of every family: `nlviz models -v` names exactly the blocks its family's
    metadata gives for the default network, in forward order."""
    import torch

    from nlviz.models import build

    with torch.device("meta"):
        model = build(name)
    infos = family_of(name).blocks(model)
    lines = models_verbose[name]
    assert [line.split()[0] for line in lines] == ([b.name for b in infos] or ["no"])
    for b in infos:
        assert type(model.get_submodule(b.name)).__name__ in lines[b.depth]


def test_every_family_is_listed_by_nlviz_models(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    for fam in families():
        assert f"({fam.name})" in out


def test_models_verbose_of_the_probe_family_names_its_probes():
    from nlviz.cli.models import block_lines

    lines = block_lines("i3d_inception", stages=PROBE_STAGES, dims="space")
    assert lines == [f"{s}.nl  FeatureSimilarityProbe: embedded_gaussian, space" for s in PROBE_STAGES]


def test_models_lists_only_the_names_given_and_rejects_unknown_ones(capsys):
    assert cli.main(["models", "tiny_i3d_nl2", "tiny_i3d_nl0", "-v"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out if not line.startswith(" ")] == ["tiny_i3d_nl0", "tiny_i3d_nl2"]
    assert cli.main(["models", "tiny_i3d_nl2", "resnet_nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("nlviz models: error: ")
    assert "resnet_nope" in captured.err and "tiny_i3d_nl2" in captured.err


def test_every_command_configures_and_the_parser_lists_them(capsys):
    parser = cli.build_parser(cli.COMMANDS)
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in cli.COMMANDS)


def test_no_command_or_an_unknown_one_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["frobnicate"])
    assert e.value.code == 2 and "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_help_of_nlviz_and_of_every_command_imports_no_torch():
    commands = list(cli.COMMANDS)  # the trainer's flags too: their defaults live in nlviz.names
    code = f"""
import contextlib, io, sys
from nlviz.cli import main
for argv in [["--help"]] + [[c, "--help"] for c in {commands!r}]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(argv)
heavy = sorted(m for m in ("torch", "cv2", "numpy", "nlviz.zoo") if m in sys.modules)
print(",".join(heavy) or "none")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "none", out.stderr


def test_python_dash_m_nlviz_runs_the_same_command_line():
    out = subprocess.run([sys.executable, "-m", "nlviz", "zoo", "--source", "nope"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "nlviz", "models", "tiny_i3d_nl2"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("tiny_i3d_nl2 ")


def test_info_describes_a_network_of_another_family_than_resnet(tmp_path, capsys):
    from nlviz.models import build
    from nlviz.weights import save_weights

    model = build("i3d_inception", base_channels=8, num_classes=5, stages=("Mixed_3c", "Mixed_4f"))
    path = save_weights(model, tmp_path / "probe.safetensors")
    assert cli.main(["info", str(path), "--frames", "8", "--size", "112"]) == 0
    out = capsys.readouterr().out
    assert "architecture: i3d_inception" in out and "backbone:     InceptionI3d, " in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  Mixed_")]
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("Mixed_3c.nl", "embedded_gaussian", "4x14x14", "4x14x14"),
                                                        ("Mixed_4f.nl", "embedded_gaussian", "2x7x7", "2x7x7")]
