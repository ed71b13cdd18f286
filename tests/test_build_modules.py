import pytest

from multilabel import build_modules
from multilabel.features.backbones import module_builder
from multilabel.base.errors import EXIT_BAD_INPUT, EXIT_OK, UserError


def test_builds_the_named_modules_and_prints_their_paths(tmp_path, monkeypatch, capsys):
    built = []
    monkeypatch.setattr(module_builder, "build_module",
                        lambda name, model_dir: built.append(name) or f"{model_dir}/{name}")
    assert build_modules.main(["--model_dir", str(tmp_path), "efficientnet_lite0"]) == EXIT_OK
    assert built == ["efficientnet_lite0"]
    assert capsys.readouterr().out == f"{tmp_path}/efficientnet_lite0\n"
    assert build_modules.main(["--model_dir", str(tmp_path), "--quiet"]) == EXIT_OK
    assert built[1:] == list(module_builder.RECIPES)


def test_build_error_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    def fail(name, model_dir):
        raise UserError("checksum mismatch", "MODEL/.downloads/x.whl")

    monkeypatch.setattr(module_builder, "build_module", fail)
    assert build_modules.main(["--model_dir", str(tmp_path)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == ("build_modules: error: MODEL/.downloads/x.whl: "
                                       "checksum mismatch\n")


def test_unknown_name_is_rejected_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        build_modules.main(["--model_dir", str(tmp_path), "resnet50"])
    assert info.value.code == EXIT_BAD_INPUT
    assert "unknown module 'resnet50'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
