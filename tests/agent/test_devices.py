"""resolve_device: user device strings become torch devices, or one-line errors."""

from __future__ import annotations

import pytest
import torch

from hrm_agent.devices import CPU_ROWS_PER_PASS, default_batch_size, resolve_device


@pytest.fixture
def no_gpu(monkeypatch):
    """This process sees no CUDA GPU and no MPS, whatever the machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """A CUDA build that sees two GPUs (only the checks are faked: nothing moves to them)."""
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_without_a_gpu_are_the_cpu(no_gpu):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_takes_cuda_when_there_is_a_gpu(two_gpus):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_a_gpu_is_one_line_naming_what_there_is(no_gpu, name):
    with pytest.raises(ValueError, match=r"^device 'cuda(:0)?': .*; available here: cpu$") as err:
        resolve_device(name)
    assert "\n" not in str(err.value) and torch.__version__ in str(err.value)


def test_a_cuda_index_out_of_range_names_the_devices_there_are(two_gpus):
    with pytest.raises(ValueError, match=r"'cuda:2': no such CUDA device, .* sees 2 \(cuda:0"):
        resolve_device("cuda:2")


def test_mps_without_mps_is_named(no_gpu):
    with pytest.raises(ValueError, match=r"device 'mps': MPS is not available"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["gpu", "", "cuda:x", "meta"])
def test_an_unknown_or_unsupported_device_lists_the_choices(no_gpu, name):
    with pytest.raises(ValueError, match=r"device .*use auto, cpu, cuda, cuda:N or mps"):
        resolve_device(name)


@pytest.fixture
def keep_threads():
    """Put torch's thread count back after the test (it is process-wide)."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_set_inference_threads_sets_restores_or_leaves_torch_threads(keep_threads):
    from hrm_agent import devices

    devices.set_inference_threads(1)
    assert torch.get_num_threads() == 1
    devices.set_inference_threads(None)  # None leaves the setting
    assert torch.get_num_threads() == 1
    devices.set_inference_threads(0)  # 0: torch's own default, read at import
    assert torch.get_num_threads() == devices._TORCH_DEFAULT_THREADS
    devices.set_inference_threads(1, torch.device("meta"))  # not a CPU model: untouched
    assert torch.get_num_threads() == devices._TORCH_DEFAULT_THREADS


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_a_bad_thread_setting_names_the_argument(bad, keep_threads):
    from hrm_agent.devices import set_inference_threads

    with pytest.raises(ValueError, match=r"^--threads must be an integer >= 1, 0 .* got"):
        set_inference_threads(bad, name="--threads")


def test_eval_solve_and_the_envs_share_one_thread_default():
    import inspect

    from hrm_agent import devices
    from hrm_agent.api import solve
    from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS
    from hrm_env.envs.reasoning import ReasoningEnv
    from hrm_env.envs.vector import ReasoningVectorEnv

    assert devices.DEFAULT_INFERENCE_THREADS is DEFAULT_INFERENCE_THREADS
    for f in (solve, ReasoningEnv.__init__, ReasoningVectorEnv.__init__):
        assert inspect.signature(f).parameters["threads"].default == DEFAULT_INFERENCE_THREADS


def test_the_default_batch_keeps_a_cpu_pass_near_its_row_budget_and_a_gpu_wide():
    assert default_batch_size("cpu") == CPU_ROWS_PER_PASS
    assert default_batch_size(torch.device("cpu"), samples=8) == CPU_ROWS_PER_PASS // 8
    assert default_batch_size("cpu", samples=10 * CPU_ROWS_PER_PASS) == 1  # never 0 puzzles
    assert default_batch_size("cuda", samples=8) == default_batch_size("cuda") == 256
