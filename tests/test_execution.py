"""How the network runs (channels-last, torch.compile): the same function as the eager network."""

from __future__ import annotations

import shutil

import pytest
import torch

from cytopaint.diffusion.execution import COMPILE_MODES, Execution

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="torch.compile on the CPU needs a C++ compiler")


@pytest.mark.parametrize("spec", ["eager", "channels-last", "compile", "compile=reduce-overhead",
                                  "channels-last+compile=max-autotune"])
def test_an_execution_spec_reads_back_from_its_label(spec: str) -> None:
    assert Execution.parse(spec).label == spec
    assert Execution.parse("compile=default") == Execution.parse("compile") == Execution(compile="default")


@pytest.mark.parametrize(("spec", "message"), [("nhwc", "'nhwc' is not channels-last or compile"),
                                               ("compile=fast", "execution.compile must be one of"),
                                               ("eager+compile", "'eager' is not channels-last")])
def test_a_bad_execution_is_refused_with_what_it_takes(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Execution.parse(spec)


def test_bad_execution_values_are_refused_as_they_are_made() -> None:
    with pytest.raises(ValueError, match="one of " + str(list(COMPILE_MODES)).replace("[", r"\[").replace("]", r"\]")):
        Execution(compile="fastest")
    with pytest.raises(ValueError, match="true or false"):
        Execution(channels_last="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["channels-last", pytest.param("compile", marks=needs_compiler),
                                  pytest.param("channels-last+compile", marks=needs_compiler)])
def test_a_prepared_network_computes_what_the_eager_one_does(tiny_net, spec: str) -> None:
    torch.manual_seed(1)
    x, t = torch.randn(3, 1, 16, 16), torch.tensor([0, 7, 19])
    with torch.no_grad():
        eager = tiny_net(x, t)
        prepared = Execution.parse(spec).prepare(tiny_net)
        out = prepared(x, t)
        assert torch.allclose(out, eager, atol=1e-5, rtol=1e-4)
        assert torch.allclose(prepared(x[:1], t[:1]), eager[:1], atol=1e-5, rtol=1e-4)  # another batch size
    conv = next(m for m in tiny_net.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous() != ("channels" in spec)  # weights converted in place for channels-last
