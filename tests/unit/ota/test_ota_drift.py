"""Reciprocity training under a drifting (Gauss-Markov) channel: what fails and what does not.

Diagnosis behind docs/ota.md, "Time-varying channel": at rho = 0.99 per burst the echoed gradient
stays aligned with the exact one (the echo is not the problem); what breaks training is that the
layer's weight W = Re(C^H H P) follows the channel, and a common phase rotation of H by pi turns W
into -W, which pushes a trained network below chance.
"""

import numpy as np
import torch

from hil.ota import IdealTransport, OTALinear, OTALink


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.view_as_real(a).ravel(), torch.view_as_real(b).ravel()
    return float(a @ b / (a.norm() * b.norm()))


def test_echoed_gradient_tracks_exact_gradient_under_drift():
    # Seed 11, 2x2, 20 dB, rho = 0.99 per burst (forward and reverse each advance the channel), 60
    # steps: the channel decorrelates (|corr| with the first draw falls well below 1) but every echo
    # stays within the noise of the exact H^H g_y of the forward burst. Measured: min cosine 0.95,
    # mean 0.98, |corr| between the first and last channel 0.05.
    rng = np.random.default_rng(11)
    t = IdealTransport(2, 2, 20.0, rng, rho=0.99)
    link = OTALink(t, "reciprocity")
    h_first = t.true_channel().copy()
    gen = torch.Generator().manual_seed(11)
    cosines = []
    for _ in range(60):
        h = torch.from_numpy(t.true_channel().copy())  # the channel of this forward burst
        s = torch.randn(64, 2, 16, 2, generator=gen).contiguous().view(torch.complex64).squeeze(-1).requires_grad_(True)
        y = link(s)
        y.retain_grad()
        w = torch.randn(64, 2, 16, 2, generator=gen).contiguous().view(torch.complex64).squeeze(-1)
        (y.real * w.real + y.imag * w.imag).sum().backward()
        exact = torch.einsum("rt,brk->btk", h.conj(), y.grad)
        cosines.append(_cos(s.grad, exact))
        assert torch.isfinite(torch.view_as_real(s.grad)).all()
    h_last = t.true_channel()
    corr = abs(np.vdot(h_first.ravel(), h_last.ravel())) / (np.linalg.norm(h_first) * np.linalg.norm(h_last))
    assert corr < 0.9, f"the channel should have drifted (|corr| = {corr:.2f})"
    assert min(cosines) > 0.9, f"echo misaligned with the exact gradient: {np.round(cosines, 2)}"


def test_common_phase_rotation_by_pi_negates_the_layer():
    # Why a drifting channel gives *below-chance* accuracy, not chance: W(H e^{j phi}) =
    # cos(phi) W(H) - sin(phi) Re(j ...); at phi = pi the trained layer is exactly negated.
    torch.manual_seed(0)
    layer = OTALinear(8, 6, 2, 2, 4)
    h = (np.random.default_rng(5).standard_normal((2, 2)) + 1j * np.random.default_rng(6).standard_normal((2, 2))) / np.sqrt(2)
    w0 = layer.effective_weight(h)
    torch.testing.assert_close(layer.effective_weight(-h), -w0)
    w90 = layer.effective_weight(1j * h)
    assert abs(_cos(w0.to(torch.complex64), w90.to(torch.complex64))) < 0.5  # a quarter turn: unrelated weights


def _sym(gen, b=16, n=2, k=4):
    return torch.randn(b, n, k, 2, generator=gen).contiguous().view(torch.complex64).squeeze(-1)


def test_hold_channel_keeps_the_layer_fixed_while_the_channel_drifts():
    # Regression for the rho = 0.99 collapse: without hold_channel the layer computed over a drifting
    # channel changes (W follows H); with it the receiver maps every burst onto its first estimate,
    # so the same input gives the same output 40 bursts later (noiseless, rho = 0.9: the channel has
    # decorrelated completely, |corr| ~ 0.9^40).
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    outs = {}
    for hold in (False, True):
        t = IdealTransport(2, 2, None, np.random.default_rng(21), rho=0.9)
        torch.manual_seed(0)
        layer = OTALinear(8, 6, 2, 2, 4, link=OTALink(t, "reciprocity", hold_channel=hold), normalize=False).eval()
        with torch.no_grad():
            first = layer(x)
            for _ in range(40):
                layer(x)
            outs[hold] = (first, layer(x))
    first, later = outs[True]
    torch.testing.assert_close(later, first, rtol=1e-3, atol=1e-3)
    first, later = outs[False]
    assert float((later - first).norm() / first.norm()) > 0.3  # the unheld layer has become another layer


def test_hold_channel_gradients_are_those_of_the_reference_channel():
    # Noiseless: y' = M y = H_ref s and dL/ds = H_ref^H dL/dy' in the estimated and exact modes
    # exactly; reciprocity echoes through the next burst's channel (the channel advances once per
    # burst, rho = 0.999 here), so it matches to the drift: cosine > 0.99.
    gen = torch.Generator().manual_seed(3)
    for mode in ("estimated", "exact", "reciprocity"):
        t = IdealTransport(2, 2, None, np.random.default_rng(4), rho=0.999 if mode == "reciprocity" else 0.9)
        link = OTALink(t, mode, hold_channel=True)
        with torch.no_grad():
            link(_sym(gen))  # first burst: the reference
        href = torch.from_numpy(link.reference)
        for _ in range(5):
            link(_sym(gen))  # the channel drifts on
        s = _sym(gen).requires_grad_(True)
        y = link(s)
        torch.testing.assert_close(y.detach(), torch.einsum("rt,btk->brk", href, s.detach()), rtol=1e-3, atol=1e-3)
        w = _sym(gen)
        (y.real * w.real + y.imag * w.imag).sum().backward()
        want = torch.einsum("rt,brk->btk", href.conj(), w)
        if mode == "reciprocity":
            assert _cos(s.grad, want) > 0.99, mode
        else:
            torch.testing.assert_close(s.grad, want, rtol=1e-3, atol=1e-3)


def test_hold_channel_needs_a_pilot_estimate():
    import pytest

    from hil.errors import LinkError
    from hil.ota.transport import Reception

    class NoEstimate(IdealTransport):
        def send(self, symbols):
            r = super().send(symbols)
            return Reception(r.payload, None, r.noise_var, r.snr_db)

    link = OTALink(NoEstimate(2, 2, None, np.random.default_rng(0)), "reciprocity", hold_channel=True)
    with pytest.raises(LinkError, match="pilot estimate"):
        link(_sym(torch.Generator().manual_seed(0)))


def test_hold_channel_reception_is_in_the_frame_of_the_mapped_payload():
    # Seed 21, 2x2, 20 dB, rho = 0.95 per burst. With hold_channel, transmit() returns payload M y,
    # and its channel estimate must be M H_hat (~= H_ref, the first estimate) with the noise variance
    # of M n. Checked against an independent measurement: the transport's true channel H of the burst
    # (IdealTransport.true_channel, read before sending) gives the noise actually in the payload,
    # n_M = payload - M H s, and the signal M H s. Tolerances: the noise power of 16 x 2 x 64 = 2048
    # complex samples has a relative std of 1/sqrt(2048) = 2.2 %, so 10 % is 4.5 sigma; the SNR
    # (per receive antenna, signal over noise power, both measured) within 0.5 dB, which allows the
    # pilot estimate's error (noise / 16 per entry at 20 dB, about 0.1 dB).
    rng = np.random.default_rng(21)
    t = IdealTransport(2, 2, 20.0, rng, rho=0.95)
    link = OTALink(t, "reciprocity", hold_channel=True)
    srng = np.random.default_rng(22)
    for i in range(6):
        s = ((srng.standard_normal((16, 2, 64)) + 1j * srng.standard_normal((16, 2, 64))) / np.sqrt(2)).astype(np.complex64)
        h = t.true_channel().astype(np.complex128)
        rec = link.transmit(s)
        m = link._map
        np.testing.assert_allclose(rec.channel_estimate, m @ link.last.channel_estimate, rtol=1e-4, atol=1e-5)
        if i > 0:  # the mapped estimate stays at the reference while the channel drifts
            err = np.linalg.norm(rec.channel_estimate - link.reference) / np.linalg.norm(link.reference)
            assert err < 0.2
        signal = np.einsum("rt,btk->brk", m @ h, s)
        noise = rec.payload - signal
        p_noise = float(np.mean(np.abs(noise) ** 2))
        assert abs(rec.noise_var / p_noise - 1) < 0.10, (i, rec.noise_var, p_noise)
        p_sig = float(np.mean(np.abs(signal) ** 2))
        assert abs(rec.snr_db - 10 * np.log10(p_sig / p_noise)) < 0.5, (i, rec.snr_db, 10 * np.log10(p_sig / p_noise))
