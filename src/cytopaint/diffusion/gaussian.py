"""The Gaussian diffusion process: schedule, forward process, posterior, learned variance, losses.

All maths of the DDPM lives here; samplers only call these methods. Equation numbers refer to

- [Ho] Ho, Jain, Abbeel 2020, "Denoising Diffusion Probabilistic Models";
- [ND] Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models";
- [DDIM] Song, Meng, Ermon 2021, "Denoising Diffusion Implicit Models";
- [DiffPIR] Zhu et al. 2023, "Denoising Diffusion Models for Plug-and-Play Image Restoration".

Time indexing: the process has ``T`` steps and states ``x_0 .. x_T``. Array index ``i`` in
``0 .. T-1`` holds the quantities of the step that produces ``x_{i+1}`` from ``x_i`` (``betas[i]``
is beta_{i+1} in the papers) and the network is called with ``i`` when denoising ``x_{i+1}``.
Samplers walk the states: a reverse step from state ``n`` (``1 .. T``) is step index
``i = n - 1`` (`step_index`); the forward process to a state, `q_sample_state` and `q_renoise`,
takes state numbers, with ``alpha_bar`` of state 0 (the data) equal to 1 (`state_alpha_bar`).
All per-step arrays are float64 numpy; tensors are gathered per sample with ``_extract``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

#: Offset s of the cosine schedule, [ND] eq. 17.
COSINE_S = 0.008
#: Upper clip of beta_t, [ND] section 3.2 (prevents singularities near t = T).
MAX_BETA = 0.999
#: Weight lambda of L_vlb in the hybrid objective, [ND] section 3.1.
HYBRID_LAMBDA = 1e-3


class Variance(str, Enum):
    """How Sigma_theta(x_t, t) is chosen: learned between beta-tilde and beta ([ND] eq. 15), or fixed
    ([Ho] section 3.2). The values are the names model cards use."""

    LEARNED_RANGE = "learned_range"
    FIXED_SMALL = "fixed_small"
    FIXED_LARGE = "fixed_large"

    @classmethod
    def parse(cls, value: str | Variance) -> Variance:
        """The variance type named ``value``; ValueError for any other name."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown variance type {value!r} (one of {[v.value for v in cls]})") from None


def cosine_alpha_bar(t: np.ndarray | float) -> np.ndarray:
    """alpha-bar at continuous time t in [0, 1]: f(t) / f(0), f(t) = cos^2(((t + s)/(1 + s)) pi/2), [ND] eq. 17."""
    def f(u: np.ndarray | float) -> np.ndarray:
        return np.cos((np.asarray(u, dtype=np.float64) + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2

    return f(t) / f(0.0)


def cosine_betas(num_steps: int, max_beta: float = MAX_BETA) -> np.ndarray:
    """beta_t = min(1 - alpha-bar_t / alpha-bar_{t-1}, 0.999) for t = 1..T ([ND] section 3.2)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    grid = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    abar = cosine_alpha_bar(grid)
    return np.minimum(1.0 - abar[1:] / abar[:-1], max_beta)


def linear_betas(num_steps: int) -> np.ndarray:
    """The linear schedule of [Ho] section 4 (1e-4 .. 0.02 for T = 1000), scaled to other T as in [ND]."""
    scale = 1000 / num_steps
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)


def respace_betas(alphas_cumprod: np.ndarray, keep: Sequence[int]) -> np.ndarray:
    """Betas of a process that only visits the steps in ``keep`` ([ND] section 4).

    For kept steps k_1 < k_2 < ..., beta'_n = 1 - abar_{k_n} / abar_{k_{n-1}} with abar_{k_0} = 1,
    so the respaced process has exactly the original alpha-bar at every kept step.
    """
    keep = np.asarray(sorted(set(int(k) for k in keep)), dtype=np.int64)
    if keep.size == 0 or keep[0] < 0 or keep[-1] >= len(alphas_cumprod):
        raise ValueError(f"kept steps must be a non-empty subset of 0..{len(alphas_cumprod) - 1}")
    abar = alphas_cumprod[keep]
    prev = np.concatenate([[1.0], abar[:-1]])
    return 1.0 - abar / prev


def even_spacing(num_steps: int, count: int) -> list[int]:
    """``count`` step indices spread evenly over ``0 .. num_steps-1``, always keeping the last."""
    if not 1 <= count <= num_steps:
        raise ValueError(f"cannot keep {count} of {num_steps} steps")
    return sorted(set(np.round(np.linspace(0, num_steps - 1, count)).astype(int).tolist()))


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log p(x_0 | x_1) of the discretised Gaussian decoder, [Ho] eq. 13 (data in [-1, 1], 256 levels).

    The edge bins extend to -inf (for x = -1) and +inf (for x = +1).
    """
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = torch.special.ndtr(inv_std * (centred + 1.0 / 255.0))
    cdf_minus = torch.special.ndtr(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_minus = torch.log((1.0 - cdf_minus).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_minus).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_minus, log_delta))


def _extract(arr: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Gather ``arr[t]`` per sample and broadcast to ``like``'s shape (in float32 on its device)."""
    out = torch.from_numpy(arr).to(device=t.device)[t].float()
    return out.view(-1, *([1] * (like.ndim - 1))).to(like.device)


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=tuple(range(1, x.ndim)))


@dataclass(frozen=True)
class DiffusionConfig:
    """What a model card records about the diffusion process."""

    steps: int = 256
    schedule: str = "cosine"
    variance: str = "learned_range"

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "linear"):
            raise ValueError(f"unknown noise schedule {self.schedule!r} (cosine or linear)")
        Variance.parse(self.variance)

    def build(self, respace: int | Sequence[int] | None = None) -> GaussianDiffusion:
        """The process, optionally respaced to ``respace`` evenly spaced steps or an explicit step list."""
        betas = cosine_betas(self.steps) if self.schedule == "cosine" else linear_betas(self.steps)
        base = GaussianDiffusion(betas, variance=self.variance)
        if respace is None:
            return base
        return base.respaced_to(respace) if isinstance(respace, int) else base.respaced(respace)


class GaussianDiffusion:
    """A discrete Gaussian diffusion process with an eps-predicting network.

    ``timestep_map[i]`` is the original step index fed to the network for step ``i``; it is the
    identity unless the process was respaced.
    """

    def __init__(self, betas: np.ndarray, variance: str | Variance = Variance.LEARNED_RANGE,
                 timestep_map: Sequence[int] | None = None, original_steps: int | None = None):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or np.any(betas <= 0) or np.any(betas > 1):
            raise ValueError("betas must be a 1-D array in (0, 1]")
        self.betas = betas
        self.variance = Variance.parse(variance)
        self.num_timesteps = len(betas)
        self.original_steps = original_steps or self.num_timesteps
        self.timestep_map = np.asarray(timestep_map if timestep_map is not None else np.arange(len(betas)), np.int64)

        self.alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(self.alphas)
        self.alphas_cumprod_prev = np.concatenate([[1.0], self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        # Posterior q(x_{t-1} | x_t, x_0), [Ho] eqs. 6-7.
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # beta-tilde is 0 at the first step; its log is clipped to the next value ([ND] appendix).
        first = self.posterior_variance[1] if len(betas) > 1 else betas[0]
        self.posterior_log_variance_clipped = np.log(np.concatenate([[first], self.posterior_variance[1:]]))
        # fixed_large uses beta, with beta-tilde at the first step for a better decoder ([ND] appendix).
        self.fixed_large_log_variance = np.log(np.concatenate([[first], betas[1:]]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(self.alphas) / (1.0 - self.alphas_cumprod)

    def respaced(self, keep: Sequence[int]) -> GaussianDiffusion:
        """The process restricted to the steps in ``keep`` ([ND] section 4); the network still sees original t."""
        keep = sorted(set(int(k) for k in keep))
        return GaussianDiffusion(respace_betas(self.alphas_cumprod, keep), variance=self.variance,
                                 timestep_map=self.timestep_map[keep], original_steps=self.original_steps)

    def respaced_to(self, count: int) -> GaussianDiffusion:
        """The process restricted to ``count`` evenly spaced steps."""
        if count == self.num_timesteps:
            return self
        return self.respaced(even_spacing(self.num_timesteps, count))

    # -- forward process -------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), [Ho] eq. 4."""
        return _extract(self.sqrt_alphas_cumprod, t, x0) * x0 + _extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    def q_sample_state(self, x0: torch.Tensor, n: int, noise: torch.Tensor) -> torch.Tensor:
        """Sample state x_n ~ q(x_n | x_0) = N(sqrt(abar_n) x_0, (1 - abar_n) I), [Ho] eq. 4, for one n."""
        abar = self.state_alpha_bar(n)
        return math.sqrt(abar) * x0 + math.sqrt(1.0 - abar) * noise

    def q_renoise(self, x_from: torch.Tensor, n_from: int, n_to: int, noise: torch.Tensor) -> torch.Tensor:
        """Sample state x_{n_to} ~ q(x_{n_to} | x_{n_from}) for n_to > n_from (RePaint's jump forward).

        q(x_b | x_a) = N(sqrt(abar_b / abar_a) x_a, (1 - abar_b / abar_a) I), from [Ho] eq. 2.
        """
        if not 0 <= n_from < n_to <= self.num_timesteps:
            raise ValueError(f"cannot re-noise from state {n_from} to state {n_to}")
        ratio = self.state_alpha_bar(n_to) / self.state_alpha_bar(n_from)
        return math.sqrt(ratio) * x_from + math.sqrt(1.0 - ratio) * noise

    def state_alpha_bar(self, n: int) -> float:
        """alpha-bar of state x_n: ``alphas_cumprod[n - 1]``, and 1 for the data x_0."""
        if not 0 <= n <= self.num_timesteps:
            raise ValueError(f"state {n} outside 0..{self.num_timesteps}")
        return 1.0 if n == 0 else float(self.alphas_cumprod[n - 1])

    @staticmethod
    def step_index(n: int) -> int:
        """The step index of the reverse step from state x_n to x_{n-1} (what the network is called with)."""
        return n - 1

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0), [Ho] eq. 7."""
        mean = _extract(self.posterior_mean_coef1, t, xt) * x0 + _extract(self.posterior_mean_coef2, t, xt) * xt
        return mean, _extract(self.posterior_variance, t, xt), _extract(self.posterior_log_variance_clipped, t, xt)

    def predict_x0_from_eps(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), from [Ho] eq. 4 (cf. eq. 15)."""
        return _extract(self.sqrt_recip_alphas_cumprod, t, xt) * xt - _extract(self.sqrt_recipm1_alphas_cumprod, t, xt) * eps

    # -- reverse process ---------------------------------------------------------------------
    def model_log_variance(self, var_out: torch.Tensor | None, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """log Sigma_theta(x_t, t).

        ``learned_range`` ([ND] eq. 15): Sigma = exp(v log beta_t + (1 - v) log beta-tilde_t) with the
        network output mapped from [-1, 1] to v in [0, 1], so -1 gives beta-tilde and +1 gives beta.
        ``fixed_small`` is beta-tilde, ``fixed_large`` is beta ([Ho] section 3.2).
        """
        min_log = _extract(self.posterior_log_variance_clipped, t, like)
        max_log = _extract(np.log(self.betas), t, like)
        if self.variance is Variance.LEARNED_RANGE:
            if var_out is None:
                raise ValueError("learned_range variance needs the network's variance channels")
            frac = (var_out.float() + 1.0) / 2.0
            return frac * max_log + (1.0 - frac) * min_log
        if self.variance is Variance.FIXED_SMALL:
            return min_log.expand_as(like)
        return _extract(self.fixed_large_log_variance, t, like).expand_as(like)

    def split_output(self, out: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split the network output into eps and (for learned variance) the variance interpolation v."""
        if self.variance is Variance.LEARNED_RANGE:
            if out.shape[1] != 2 * channels:
                raise ValueError(f"learned_range needs {2 * channels} output channels, the network gave {out.shape[1]}")
            return out[:, :channels], out[:, channels:]
        return out, None

    def model_forward(self, model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], xt: torch.Tensor,
                      t: torch.Tensor) -> torch.Tensor:
        """Call the network with the original timestep of each (possibly respaced) step index."""
        t_model = torch.from_numpy(self.timestep_map).to(t.device)[t]
        return model(xt, t_model)

    def p_mean_variance(self, out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor,
                        clip_x0: bool = True) -> dict[str, torch.Tensor]:
        """Mean and log-variance of p_theta(x_{t-1} | x_t) from a network output ([ND] eqs. 13-15).

        The mean is the posterior mean (eq. 7) at the x_0 predicted from eps, clipped to [-1, 1].
        """
        eps, v = self.split_output(out.float(), xt.shape[1])
        log_var = self.model_log_variance(v, t, xt)
        x0 = self.predict_x0_from_eps(xt, t, eps)
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        mean, _, _ = self.q_posterior(x0, xt, t)
        return {"mean": mean, "log_variance": log_var, "pred_x0": x0, "eps": eps}

    def p_sample_step(self, out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_{t-1} = mu_theta + exp(log Sigma / 2) z ([Ho] Algorithm 2), no noise at the last step (t index 0)."""
        p = self.p_mean_variance(out, xt, t)
        return self.posterior_sample(p["pred_x0"], xt, t, p["log_variance"], noise)

    def posterior_sample(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, log_variance: torch.Tensor,
                         noise: torch.Tensor) -> torch.Tensor:
        """x_{t-1} ~ N(mu-tilde_t(x_t, x0), Sigma): the posterior mean of [Ho] eq. 7 at a given x0, with the
        model's variance; no noise at the last step (t index 0). With x0 the network's prediction this is
        [Ho] Algorithm 2; with a corrected x0 it is DDNM's reverse step."""
        mean, _, _ = self.q_posterior(x0, xt, t)
        nonzero = (t != 0).float().view(-1, *([1] * (xt.ndim - 1)))
        return mean + nonzero * torch.exp(0.5 * log_variance) * noise

    def ddim_state_step(self, x0: torch.Tensor, xt: torch.Tensor, n_from: int, n_to: int, zeta: float,
                        noise: torch.Tensor) -> torch.Tensor:
        """State x_{n_to} from x_{n_from} and an estimate of x0, for any n_to < n_from ([DiffPIR]
        Algorithm 1, last line).

        The noise that explains x_{n_from} given x0 is eps-hat = (x_n - sqrt(abar_n) x0) / sqrt(1 - abar_n)
        ([Ho] eq. 4 solved for eps); the new state is sqrt(abar_m) x0 + sqrt(1 - abar_m) (sqrt(1 - zeta)
        eps-hat + sqrt(zeta) z). zeta = 0 is the deterministic DDIM step ([DDIM] eq. 12, eta = 0); zeta = 1
        re-noises x0 afresh, q(x_m | x0). At n_to = 0 it returns x0.
        """
        if not 0 <= n_to < n_from <= self.num_timesteps:
            raise ValueError(f"cannot step from state {n_from} down to state {n_to}")
        if not 0.0 <= zeta <= 1.0:
            raise ValueError(f"zeta must be in [0, 1], got {zeta}")
        abar_from, abar_to = self.state_alpha_bar(n_from), self.state_alpha_bar(n_to)
        eps_hat = (xt - math.sqrt(abar_from) * x0) / math.sqrt(1.0 - abar_from)
        mixed = math.sqrt(1.0 - zeta) * eps_hat + math.sqrt(zeta) * noise
        return math.sqrt(abar_to) * x0 + math.sqrt(1.0 - abar_to) * mixed

    # -- training objective ---------------------------------------------------------------------
    def vlb_terms(self, out: torch.Tensor, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Per-sample L_t in bits per dimension: KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0 ([Ho] eq. 5),
        and the discretised decoder NLL -log p(x_0|x_1) at t = 0 ([Ho] eq. 13)."""
        true_mean, _, true_log_var = self.q_posterior(x0, xt, t)
        p = self.p_mean_variance(out, xt, t, clip_x0=False)
        kl = _mean_flat(normal_kl(true_mean, true_log_var, p["mean"], p["log_variance"])) / math.log(2.0)
        nll = -_mean_flat(discretized_gaussian_log_likelihood(x0, p["mean"], 0.5 * p["log_variance"])) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                        t: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample hybrid loss L_simple + lambda L_vlb ([ND] eq. 16, lambda = 0.001).

        L_simple = ||eps - eps_theta||^2 ([Ho] eq. 14). L_vlb = sum_t L_t is estimated by T * L_t for a
        uniform t, so lambda * L_vlb = (lambda T) L_t = (T / 1000) L_t. The VLB term trains the variance
        only: the gradient through the predicted mean is stopped ([ND] section 3.1).
        """
        xt = self.q_sample(x0, t, noise)
        out = self.model_forward(model, xt, t).float()
        eps, v = self.split_output(out, x0.shape[1])
        mse = _mean_flat((noise - eps) ** 2)
        terms = {"mse": mse}
        if v is not None:
            frozen = torch.cat([eps.detach(), v], dim=1)
            terms["vb"] = self.vlb_terms(frozen, x0, xt, t) * (HYBRID_LAMBDA * self.num_timesteps)
            terms["loss"] = mse + terms["vb"]
        else:
            terms["loss"] = mse
        return terms

    def sample_timesteps(self, batch: int, generator: torch.Generator | None = None,
                         device: torch.device | str = "cpu") -> torch.Tensor:
        """Uniform training timesteps."""
        return torch.randint(0, self.num_timesteps, (batch,), generator=generator).to(device)


def gaussian_noise_like(x: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, sample i drawn from ``generators[i]`` only.

    Drawing each sample from its own generator makes a tile's noise independent of its batch.
    """
    if len(generators) != x.shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {x.shape[0]}")
    return torch.stack([torch.randn(x.shape[1:], generator=g, device=g.device, dtype=torch.float32)
                        for g in generators]).to(x.device)


__all__ = [
    "COSINE_S", "MAX_BETA", "HYBRID_LAMBDA", "DiffusionConfig", "GaussianDiffusion", "cosine_alpha_bar",
    "cosine_betas", "linear_betas", "respace_betas", "even_spacing", "normal_kl",
    "discretized_gaussian_log_likelihood", "gaussian_noise_like",
]
