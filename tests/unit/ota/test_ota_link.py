"""OTALink gradient modes, reciprocity calibration, OTA layers against their digital equivalents."""

import numpy as np
import pytest
import torch

from hil.errors import LinkError
from hil.ota import IdealTransport, OTAConv2d, OTALinear, OTALink, ReciprocityCalibration, calibrate_reciprocity
from hil.ota.transport import Reception, Transport


def _grad_wrt_symbols(link: OTALink, s0: torch.Tensor, g_y: torch.Tensor) -> torch.Tensor:
    s = s0.clone().requires_grad_(True)
    y = link(s)
    (y.real * g_y.real + y.imag * g_y.imag).sum().backward()
    return s.grad


def _symbols(seed: int, b=5, n=2, k=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, k, 2, generator=g).mul(0.7).contiguous().view(torch.complex64).squeeze(-1)


@pytest.mark.parametrize("mode", ["reciprocity", "estimated", "exact"])
def test_noiseless_gradient_equals_channel_adjoint(mode):
    # No noise, static channel, equal chain gains: every mode gives dL/ds = H^H dL/dy exactly.
    t = IdealTransport(2, 3, None, np.random.default_rng(3))
    h = torch.from_numpy(t.true_channel())
    s, g_y = _symbols(0, n=2), _symbols(1, n=3)
    g_s = _grad_wrt_symbols(OTALink(t, mode), s, g_y)
    want = torch.einsum("rt,brk->btk", h.conj(), g_y)
    torch.testing.assert_close(g_s, want, rtol=1e-4, atol=1e-5)
    assert t.frames == (2 if mode == "reciprocity" else 1)  # reciprocity: a real second transmission


def test_forward_is_channel_times_symbols():
    t = IdealTransport(2, 2, None, np.random.default_rng(4))
    s = _symbols(2)
    y = OTALink(t, "estimated")(s)
    torch.testing.assert_close(y, torch.einsum("rt,btk->brk", torch.from_numpy(t.true_channel()), s), rtol=1e-5, atol=1e-5)


def test_uncalibrated_chain_gains_break_reciprocity_and_calibration_restores_it():
    # Seed 5: random chain amplitudes (3 dB spread) and phases. Uncalibrated, the echo is not H^H g:
    # relative error > 0.3. After calibrate_reciprocity (noiseless pilots) it is exact to 1e-4.
    t = IdealTransport(2, 2, None, np.random.default_rng(5), chain_gain_std_db=3.0, chain_phase=True)
    h = torch.from_numpy(t.true_channel())
    s, g_y = _symbols(0), _symbols(1)
    want = torch.einsum("rt,brk->btk", h.conj(), g_y)
    bad = _grad_wrt_symbols(OTALink(t, "reciprocity"), s, g_y)
    assert float((bad - want).abs().norm() / want.abs().norm()) > 0.3
    cal = calibrate_reciprocity(t, np.random.default_rng(0), n_bursts=2)
    assert cal.residual < 1e-4
    good = _grad_wrt_symbols(OTALink(t, "reciprocity", cal), s, g_y)
    torch.testing.assert_close(good, want, rtol=1e-4, atol=1e-4)


def test_calibration_fit_recovers_rank_one_ratio():
    rng = np.random.default_rng(6)
    f = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    cb = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    ca = rng.standard_normal(2) + 1j * rng.standard_normal(2)
    rv = (f / np.outer(cb, ca)).T  # so that F = diag(cb) Rv^T diag(ca)
    cal = ReciprocityCalibration.from_estimates(f, rv)
    np.testing.assert_allclose(np.diag(cal.ca) @ rv @ np.diag(cal.cb), f.T, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expected forward"):
        ReciprocityCalibration.from_estimates(f, rv.T)


def test_reciprocity_gradient_is_unbiased_under_noise():
    # 20 dB on both links: averaged over 200 bursts (seed 7) the echo's error shrinks to < 3 % of H^H g.
    t = IdealTransport(2, 2, 20.0, np.random.default_rng(7))
    link = OTALink(t, "reciprocity")
    g_y = _symbols(1).numpy()
    want = np.einsum("rt,brk->btk", np.conj(t.true_channel()), g_y)
    mean = np.mean([link.echo_gradient(g_y) for _ in range(200)], axis=0)
    assert np.linalg.norm(mean - want) / np.linalg.norm(want) < 0.03


def test_exact_mode_needs_an_in_process_channel():
    class Opaque(Transport):
        name, n_tx, n_rx = "opaque", 2, 2

        def send(self, symbols):
            return Reception(symbols, None, 0.0, 30.0)

        def send_back(self, symbols):
            return Reception(symbols, None, 0.0, 30.0)

    with pytest.raises(ValueError, match="exact"):
        OTALink(Opaque(), "exact")
    with pytest.raises(ValueError, match="gradient_mode"):
        OTALink(Opaque(), "magic")
    link = OTALink(Opaque(), "estimated")
    s = _symbols(0).requires_grad_(True)
    with pytest.raises(LinkError, match="no channel estimate"):
        link(s).abs().sum().backward()
    # bad arguments are ValueError (not LinkError, which is for link failures)
    with pytest.raises(ValueError, match=r"expected complex symbols \[B, 2, K\]"):
        link(torch.zeros(4, 3, 2, dtype=torch.complex64))
    t = IdealTransport(2, 2, None, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"expected symbols shaped \[B, 2, K\]"):
        t.send(np.zeros((4, 3, 2), np.complex64))
    with pytest.raises(ValueError, match="NaN or Inf"):
        t.send_back(np.full((1, 2, 2), np.nan, np.complex64))
    with pytest.raises(TypeError, match="numpy Generator"):
        calibrate_reciprocity(t, 0)


def test_calibration_pilots_come_from_the_given_rng():
    # The pilot payloads are drawn from the rng passed in: the same seed sends the same pilots and gives
    # the same calibration on the same (noisy, seed 3) channel, another seed sends other pilots. (The
    # ideal transport's simulated estimate does not depend on the pilot values, so the pilots are
    # compared where they are sent.)
    class Recorder(IdealTransport):
        def send(self, symbols):
            self.sent.append(symbols.copy())
            return super().send(symbols)

        def send_back(self, symbols):
            self.sent.append(symbols.copy())
            return super().send_back(symbols)

    def cal(seed):
        t = Recorder(2, 2, 10.0, np.random.default_rng(3), chain_gain_std_db=2.0, chain_phase=True)
        t.sent = []
        return calibrate_reciprocity(t, np.random.default_rng(seed), n_bursts=2), t.sent

    (a, pa), (b, pb), (_, pc) = cal(1), cal(1), cal(2)
    np.testing.assert_array_equal(a.cb, b.cb)
    assert len(pa) == 4 and all(np.array_equal(x, y) for x, y in zip(pa, pb))
    assert not any(np.allclose(x, y) for x, y in zip(pa, pc))


def test_gauss_markov_channel_correlation_matches_rho():
    # rho = 0.9 per burst; lag-1 correlation of H over 4000 bursts (seed 8) within 0.03 of rho.
    t = IdealTransport(1, 1, None, np.random.default_rng(8), rho=0.9)
    hs = []
    for _ in range(4000):
        hs.append(t.true_channel()[0, 0])
        t.send(np.ones((1, 1, 1), np.complex64))
    h = np.array(hs)
    c = np.mean(h[1:] * np.conj(h[:-1])) / np.mean(np.abs(h) ** 2)
    assert abs(c.real - 0.9) < 0.03 and abs(c.imag) < 0.03


def test_transmit_power_is_normalised():
    class Recorder(IdealTransport):
        def send(self, symbols):
            self.sent = symbols
            return super().send(symbols)

    t = Recorder(2, 2, None, np.random.default_rng(9))
    layer = OTALinear(8, 4, 2, 2, 3, link=OTALink(t, "estimated"))
    x = torch.randn(16, 8) * 5.0  # scale of the input does not change the transmitted power
    s = layer.precode(x)
    assert abs(float((s.detach().abs() ** 2).mean()) - 1.0) < 1e-5
    layer(x)
    assert t.sent.shape == (16, 2, 3)
    assert abs(float(np.mean(np.abs(t.sent) ** 2)) - 1.0) < 1e-4


def test_ota_linear_equals_its_folded_linear_over_noiseless_channel():
    torch.manual_seed(0)
    t = IdealTransport(2, 3, None, np.random.default_rng(10))
    layer = OTALinear(6, 5, 2, 3, 4, link=OTALink(t, "reciprocity"))
    layer.train()
    layer(torch.randn(32, 6))  # update running power / BN statistics
    layer.eval()
    x = torch.randn(7, 6)
    ref = layer.to_linear(t.true_channel())
    with torch.no_grad():
        torch.testing.assert_close(layer(x), ref(x), rtol=1e-4, atol=1e-5)


def test_ota_conv_equals_its_folded_conv():
    torch.manual_seed(1)
    t = IdealTransport(2, 2, None, np.random.default_rng(11))
    conv = OTAConv2d(3, 4, 3, 2, 2, 4, link=OTALink(t, "exact"), padding=1)
    conv.train()
    conv(torch.randn(4, 3, 5, 5))
    conv.eval()
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        out = conv(x)
        assert out.shape == (2, 4, 5, 5)
        torch.testing.assert_close(out, conv.to_conv(t.true_channel())(x), rtol=1e-4, atol=1e-5)


def test_layer_rejects_mismatched_antennas():
    t = IdealTransport(2, 2, None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_tx x n_rx"):
        OTALinear(4, 4, 4, 2, 2, link=OTALink(t, "estimated"))
    with pytest.raises(ValueError, match="channel_uses"):
        OTALinear(4, 4, 2, 2, 0)


def test_layer_parameter_gradients_match_exact_mode_when_noiseless():
    # Same layer, same data, noiseless channel with calibrated-away chain gains: precoder, combiner and
    # input gradients from reciprocity and from estimated equal those of autograd through the channel.
    grads = {}
    for mode in ("exact", "reciprocity", "estimated"):
        t = IdealTransport(2, 2, None, np.random.default_rng(12), chain_gain_std_db=2.0, chain_phase=True)
        cal = calibrate_reciprocity(t, np.random.default_rng(0), n_bursts=1) if mode == "reciprocity" else None
        torch.manual_seed(0)
        layer = OTALinear(5, 3, 2, 2, 2, link=OTALink(t, mode, cal), normalize=False)
        x = torch.randn(8, 5, requires_grad=True)
        layer(x).pow(2).sum().backward()
        grads[mode] = [layer.precoder.grad.clone(), layer.combiner.grad.clone(), x.grad.clone()]
        assert all(float(g.abs().sum()) > 0 for g in grads[mode])
    for mode in ("reciprocity", "estimated"):
        for got, want in zip(grads[mode], grads["exact"]):
            torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)


def test_per_sample_power_normalisation_has_no_batch_statistic():
    """power="sample": every vector leaves at unit RMS power, and a batch precoded in pieces gives the same
    symbols (power="batch" does not: its RMS is the whole batch's)."""
    from hil.ota.layers import POWER_MODES, OTALinear
    from hil.train.config import POWER_MODES as CONFIG_POWER_MODES

    assert POWER_MODES == CONFIG_POWER_MODES
    torch.manual_seed(0)
    a = torch.randn(8, 6) * torch.linspace(0.1, 10.0, 8)[:, None]  # vectors of very different power
    layer = OTALinear(6, 4, 2, 2, 3, power="sample").train()
    s = layer.precode(a)
    torch.testing.assert_close((s.abs() ** 2).mean(dim=(1, 2)), torch.ones(8), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.cat([layer.precode(a[:4]), layer.precode(a[4:])]), s)
    batch = OTALinear(6, 4, 2, 2, 3, power="batch").train()
    batch.load_state_dict(layer.state_dict())
    assert not torch.allclose(torch.cat([batch.precode(a[:4]), batch.precode(a[4:])]), batch.precode(a))
    with pytest.raises(ValueError, match="power"):
        OTALinear(6, 4, 2, 2, 3, power="vector")
