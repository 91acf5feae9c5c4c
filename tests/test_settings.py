
import pytest
from helpers.project import committed_params, committed_text

from rnnlm.errors import RnnlmError
from rnnlm.settings import load_params, parse_params


def project_params() -> dict:
    return committed_params()


def test_the_projects_params_file_is_valid(tmp_path) -> None:
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    params = load_params(tmp_path / "params.yaml")
    assert params.data.algorithm == "sha1"
    assert params.tokenize.level == "char"
    assert (params.split.train, params.split.val, params.split.test) == (0.9, 0.05, 0.05)


def test_every_key_in_params_yaml_is_commented() -> None:
    sections = {k for k, v in project_params().items() if isinstance(v, dict)}
    lines = committed_text("params.yaml").splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-")) and ":" in stripped:
            key = stripped.split(":")[0]
            if key in sections:
                continue  # section headers; their keys carry the comments
            assert lines[i - 1].strip().startswith("#"), f"params.yaml key {key!r} has no comment"


@pytest.mark.parametrize(
    ("section", "change", "expected"),
    [
        ("tokenize", {"levle": "word"},
         r"unknown key 'tokenize.levle'; allowed here: level, reverse, vocab_size"),
        ("tokenize", {"level": "byte"},
         r"'tokenize.level' = 'byte': Input should be 'char', 'word' or 'bpe'"),
        ("partition", {"batch_size": 0},
         r"'partition.batch_size' = 0: .*greater than or equal to 1"),
        ("partition", {"num_steps": "many"}, r"'partition.num_steps' = 'many': .*valid integer"),
        ("split", {"train": 0.8}, r"must be 1, got 0.9"),
        ("data", {"sha1": "xyz"}, r"'data.sha1' = 'xyz': String should match pattern"),
        ("vocab", {"reserved": ["<unk>"]}, r"always index 0"),
        # Wrong types are reported, never coerced.
        ("partition", {"batch_size": "32"}, r"'partition.batch_size' = '32': .*valid integer"),
        ("partition", {"batch_size": True}, r"'partition.batch_size' = True: .*valid integer"),
        ("clean", {"strip_gutenberg": "yes"}, r"'clean.strip_gutenberg' = 'yes': .*valid boolean"),
        ("split", {"train": "0.9"}, r"'split.train' = '0.9': .*valid number"),
    ],
)
def test_bad_values_name_the_key_the_value_and_what_is_allowed(section, change, expected) -> None:
    raw = project_params()
    raw[section] = {**raw[section], **change}
    with pytest.raises(RnnlmError, match=expected):
        parse_params(raw)


def test_unknown_section_is_named() -> None:
    raw = {**project_params(), "tokenise": {}}
    with pytest.raises(RnnlmError, match="unknown key 'tokenise'"):
        parse_params(raw)


def test_missing_file_and_bad_yaml_are_clear(tmp_path) -> None:
    with pytest.raises(RnnlmError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("data: [unclosed")
    with pytest.raises(RnnlmError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path) -> None:
    text = committed_text("params.yaml") + "\nmodel:\n  hidden: 64\n"
    (tmp_path / "params.yaml").write_text(text)
    first = 1 + text.splitlines().index("model:")
    again = len(text.splitlines()) - 1
    with pytest.raises(RnnlmError, match=rf"gives the key 'model' twice, at lines {first} "
                                         rf"and {again}: .* merge them into one"):
        load_params(tmp_path / "params.yaml")
    nested = "seed: 0\nseed: 1\n"
    (tmp_path / "nested.yaml").write_text(nested)
    with pytest.raises(RnnlmError, match="key 'seed' twice, at lines 1 and 2"):
        load_params(tmp_path / "nested.yaml")


@pytest.mark.parametrize("devices", [0, -2])
def test_a_count_of_devices_that_is_none_is_refused(devices: int) -> None:
    raw = committed_params()
    raw["train"]["devices"] = devices
    with pytest.raises(RnnlmError, match=rf"'train.devices' = {devices}: .* -1 for all of them"):
        parse_params(raw)


@pytest.mark.parametrize("temperature", [float("inf"), float("nan"), -1.0, 0.0])
def test_evaluate_temperature_must_be_finite_and_positive(temperature: float) -> None:
    raw = project_params()
    raw["evaluate"] = {**raw["evaluate"], "temperature": temperature}
    with pytest.raises(RnnlmError, match=r"'evaluate\.temperature'"):
        parse_params(raw)
