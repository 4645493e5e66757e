"""The diffusion maths against closed forms (Ho et al. 2020; Nichol & Dhariwal 2021)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cytopaint.diffusion.gaussian import (
    MAX_BETA,
    DiffusionConfig,
    GaussianDiffusion,
    cosine_alpha_bar,
    cosine_betas,
    discretized_gaussian_log_likelihood,
    even_spacing,
    normal_kl,
    respace_betas,
)


@pytest.mark.parametrize("steps", [1, 10, 256, 1000])
def test_cosine_schedule_reproduces_alpha_bar(steps: int) -> None:
    betas = cosine_betas(steps)
    assert betas.shape == (steps,)
    assert np.all(betas > 0) and np.all(betas <= MAX_BETA)
    abar = np.cumprod(1 - betas)
    expected = cosine_alpha_bar(np.arange(1, steps + 1) / steps)
    unclipped = betas < MAX_BETA
    np.testing.assert_allclose(abar[unclipped], expected[unclipped], rtol=1e-8)
    assert betas[-1] == MAX_BETA  # f(1) = 0, so the last beta is clipped


def test_cosine_alpha_bar_closed_form() -> None:
    s = 0.008
    t = 0.3
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert cosine_alpha_bar(t) == pytest.approx(f(t) / f(0))


def test_forward_process_and_x0_prediction_invert() -> None:
    d = DiffusionConfig(steps=50).build()
    x0 = torch.linspace(-1, 1, 64).view(1, 1, 8, 8).repeat(3, 1, 1, 1)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 25, 40])
    xt = d.q_sample(x0, t, noise)
    for i, ti in enumerate(t.tolist()):
        a = d.alphas_cumprod[ti]
        torch.testing.assert_close(xt[i], (math.sqrt(a) * x0[i] + math.sqrt(1 - a) * noise[i]).float())
    torch.testing.assert_close(d.predict_x0_from_eps(xt, t, noise), x0, atol=1e-4, rtol=1e-4)


def test_posterior_matches_bayes_rule() -> None:
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): precision and mean of the product of Gaussians."""
    d = DiffusionConfig(steps=30).build()
    x0 = torch.full((1, 1, 2, 2), 0.3)
    xt = torch.full((1, 1, 2, 2), -0.7)
    for ti in range(1, 30):
        t = torch.tensor([ti])
        abar_prev, alpha, beta = d.alphas_cumprod[ti - 1], d.alphas[ti], d.betas[ti]
        var = 1.0 / (1.0 / (1 - abar_prev) + alpha / beta)
        mean = var * (math.sqrt(abar_prev) * 0.3 / (1 - abar_prev) + math.sqrt(alpha) * -0.7 / beta)
        m, v, logv = d.q_posterior(x0, xt, t)
        assert float(m[0, 0, 0, 0]) == pytest.approx(mean, rel=1e-5, abs=1e-6)
        assert float(v[0, 0, 0, 0]) == pytest.approx(var, rel=1e-5)
        assert float(logv[0, 0, 0, 0]) == pytest.approx(math.log(var), rel=1e-5, abs=1e-6)
    # at t = 0 the posterior is exact (variance 0): the mean is x_0 and the log-variance is clipped
    m, v, logv = d.q_posterior(x0, xt, torch.tensor([0]))
    torch.testing.assert_close(m, x0)
    assert float(v.max()) == 0.0 and math.isfinite(float(logv.max()))


@pytest.mark.parametrize("steps", [20, 256])
def test_learned_range_interpolates_between_beta_tilde_and_beta(steps: int) -> None:
    d = DiffusionConfig(steps=steps).build()
    like = torch.zeros(steps, 1, 2, 2)
    t = torch.arange(steps)
    low = d.model_log_variance(-torch.ones_like(like), t, like)
    high = d.model_log_variance(torch.ones_like(like), t, like)
    mid = d.model_log_variance(torch.zeros_like(like), t, like)
    np.testing.assert_allclose(low[:, 0, 0, 0].numpy(), d.posterior_log_variance_clipped, rtol=1e-5)
    np.testing.assert_allclose(high[:, 0, 0, 0].numpy(), np.log(d.betas), rtol=1e-5)
    np.testing.assert_allclose(mid[:, 0, 0, 0].numpy(), (np.log(d.betas) + d.posterior_log_variance_clipped) / 2,
                               rtol=1e-5)
    beta_tilde = d.betas[1:] * (1 - d.alphas_cumprod[:-1]) / (1 - d.alphas_cumprod[1:])
    np.testing.assert_allclose(np.exp(low[1:, 0, 0, 0].numpy()), beta_tilde, rtol=1e-5)


@pytest.mark.parametrize("keep", [[0, 9, 99, 255], even_spacing(256, 25), list(range(0, 256, 2))])
def test_respaced_betas_reproduce_alpha_bar_at_kept_steps(keep: list[int]) -> None:
    base = DiffusionConfig(steps=256).build()
    spaced = base.respaced(keep)
    np.testing.assert_allclose(spaced.alphas_cumprod, base.alphas_cumprod[keep], rtol=1e-8)
    np.testing.assert_allclose(np.cumprod(1 - respace_betas(base.alphas_cumprod, keep)), base.alphas_cumprod[keep])
    assert spaced.timestep_map.tolist() == sorted(keep)
    # respacing a respaced process composes
    twice = spaced.respaced([0, len(keep) - 1])
    assert twice.timestep_map.tolist() == [min(keep), max(keep)]
    np.testing.assert_allclose(twice.alphas_cumprod, base.alphas_cumprod[[min(keep), max(keep)]], rtol=1e-8)


def test_even_spacing_keeps_ends_and_count() -> None:
    assert even_spacing(256, 256) == list(range(256))
    s = even_spacing(256, 50)
    assert len(s) == 50 and s[0] == 0 and s[-1] == 255
    with pytest.raises(ValueError):
        even_spacing(10, 11)


def test_discretized_likelihood_is_a_distribution_over_256_levels() -> None:
    levels = torch.linspace(-1, 1, 256).view(256, 1)
    for mean, log_scale in [(0.0, -3.0), (0.9, -1.0), (-0.5, -6.0)]:
        logp = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean),
                                                   torch.full_like(levels, log_scale))
        assert float(torch.exp(logp.double()).sum()) == pytest.approx(1.0, abs=1e-4)


def test_normal_kl() -> None:
    m, lv = torch.tensor([0.3]), torch.tensor([-1.0])
    assert float(normal_kl(m, lv, m, lv)) == pytest.approx(0.0, abs=1e-7)
    # KL(N(0,1) || N(1,1)) = 1/2
    assert float(normal_kl(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1))) == pytest.approx(0.5)


def test_renoise_composes_with_forward_process() -> None:
    """q(x_b|x_a) after q(x_a|x_0) has the marginal q(x_b|x_0)."""
    d = DiffusionConfig(steps=100).build()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.5)
    xa = math.sqrt(d.state_alpha_bar(20)) * x0 + math.sqrt(1 - d.state_alpha_bar(20)) * torch.randn(x0.shape, generator=g)
    xb = d.q_renoise(xa, 20, 30, torch.randn(x0.shape, generator=g))
    assert float(xb.mean()) == pytest.approx(math.sqrt(d.state_alpha_bar(30)) * 0.5, abs=5e-3)
    assert float(xb.var()) == pytest.approx(1 - d.state_alpha_bar(30), rel=2e-2)
    with pytest.raises(ValueError):
        d.q_renoise(xa, 30, 20, xa)


def test_ddim_state_step_follows_the_noise_that_explains_the_state() -> None:
    """zeta = 0 keeps the noise that made x_n from x0 (a DDIM step lands on the same trajectory);
    zeta = 1 is a fresh draw from q(x_m | x0); at m = 0 the step returns x0."""
    d = DiffusionConfig(steps=50).build()
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    eps, z = torch.randn(x0.shape, generator=g), torch.randn(x0.shape, generator=g)
    xn = d.q_sample_state(x0, 30, eps)
    torch.testing.assert_close(d.ddim_state_step(x0, xn, 30, 12, 0.0, z), d.q_sample_state(x0, 12, eps))
    torch.testing.assert_close(d.ddim_state_step(x0, xn, 30, 12, 1.0, z), d.q_sample_state(x0, 12, z))
    half = d.ddim_state_step(x0, xn, 30, 12, 0.5, z)
    torch.testing.assert_close(half, d.q_sample_state(x0, 12, math.sqrt(0.5) * (eps + z)))
    torch.testing.assert_close(d.ddim_state_step(x0, xn, 30, 0, 0.5, z), x0)
    for bad in ((30, 30, 0.5), (30, 40, 0.5), (30, 12, 1.5)):
        with pytest.raises(ValueError):
            d.ddim_state_step(x0, xn, *bad, z)


def test_posterior_sample_is_the_posterior_at_the_given_x0() -> None:
    d = DiffusionConfig(steps=30).build()
    g = torch.Generator().manual_seed(4)
    x0, xt, z = (torch.randn(2, 1, 4, 4, generator=g) for _ in range(3))
    log_var = torch.full_like(xt, -3.0)
    t = torch.tensor([10, 0])
    mean, _, _ = d.q_posterior(x0, xt, t)
    out = d.posterior_sample(x0, xt, t, log_var, z)
    torch.testing.assert_close(out[0], mean[0] + math.exp(-1.5) * z[0])
    torch.testing.assert_close(out[1], x0[1])  # the last step adds no noise and lands on x0


def test_hybrid_loss_weights_vlb_by_t_over_1000(tiny_net) -> None:
    d = DiffusionConfig(steps=40).build()
    x0 = torch.rand(4, 1, 16, 16) * 2 - 1
    t = torch.tensor([0, 5, 20, 39])
    noise = torch.randn(x0.shape)
    terms = d.training_losses(tiny_net, x0, t, noise)
    out = tiny_net(d.q_sample(x0, t, noise), t)
    expected_vb = d.vlb_terms(out, x0, d.q_sample(x0, t, noise), t) * (1e-3 * 40)
    torch.testing.assert_close(terms["vb"], expected_vb, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["vb"])
    assert torch.isfinite(terms["loss"]).all()


def test_vlb_trains_the_variance_only(tiny_net) -> None:
    """The VLB term's gradient reaches the network only through the variance channels."""
    d = DiffusionConfig(steps=40).build()
    x0 = torch.rand(2, 1, 16, 16) * 2 - 1
    t = torch.tensor([3, 30])
    out = torch.zeros(2, 2, 16, 16, requires_grad=True)
    xt = d.q_sample(x0, t, torch.randn(x0.shape))
    frozen = torch.cat([out[:, :1].detach(), out[:, 1:]], dim=1)
    d.vlb_terms(frozen, x0, xt, t).sum().backward()
    assert out.grad[:, :1].abs().max() == 0 and out.grad[:, 1:].abs().max() > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="schedule"):
        DiffusionConfig(schedule="quadratic")
    with pytest.raises(ValueError, match="variance"):
        DiffusionConfig(variance="learned")
    with pytest.raises(ValueError):
        GaussianDiffusion(np.array([0.1, 1.5]))
