import pytest

from brainalign.config import RunConfig, apply_overrides, load_config, parse_config
from brainalign.errors import ConfigError


def test_defaults_validate():
    config = load_config()
    assert isinstance(config, RunConfig)
    assert config.data.name == "digits"


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 4\nmodel:\n  name: resnet18\n")
    config = load_config(path, ["train.epochs=7", "train.lr=0.1", "eval.suite=standard"])
    assert config.train.epochs == 7 and config.train.lr == 0.1
    assert config.model.name == "resnet18" and config.eval.suite == "standard"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"epochs": 0}}, r"train\.epochs: .*greater than or equal to 1"),
        ({"data": {"name": "imagenet"}}, r"unknown dataset 'imagenet'; valid: .*digits"),
        ({"model": {"name": "vgg"}}, r"unknown model 'vgg'; valid: .*small_cnn"),
        ({"regularizers": [{"name": "nope"}]}, r"unknown regularizer 'nope'"),
        ({"eval": {"attacks": [{"name": "pgd_linf", "eps": [-0.1]}]}}, r"eval\.attacks\.0\.eps: .*>= 0"),
        ({"train": {"optimizer": "rmsprop"}}, r"train\.optimizer: must be 'sgd' or 'adam'"),
        ({"trian": {}}, r"trian: unknown field"),
        ({"data": {"test_fraction": 0.9}}, r"data\.test_fraction"),
    ],
)
def test_invalid_values_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="must look like section.field=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": {"epochs": 3}}, ["train.epochs.x=1"])


def test_run_dir_layout():
    config = parse_config({"experiment": "exp", "name": "pix", "seed": 3, "out_dir": "o"})
    assert config.run_dir.as_posix() == "o/exp/pix__seed3"
