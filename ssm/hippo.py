"""HiPPO-LegS state matrices and their normal / diagonal-plus-low-rank forms (numpy, init time only).

HiPPO-LegS: ``A[n, k] = -sqrt(2n+1) sqrt(2k+1)`` for ``n > k``, ``-(n+1)`` on the diagonal, 0 above.
Adding the rank-one ``P P^T`` with ``P[n] = sqrt(n + 1/2)`` gives a normal matrix
``S = A + P P^T = -1/2 I + (skew-symmetric)``: the "HiPPO-N" matrix whose eigendecomposition
initialises S5 and S4D, and which with ``-P P^T`` gives S4's NPLR form ``A = V (Λ - Pv Pv^*) V^*``.
"""

from __future__ import annotations

import numpy as np


def hippo_legs(n: int) -> np.ndarray:
    """The HiPPO-LegS matrix ``A [n, n]`` (negative, lower triangular)."""
    p = np.sqrt(1 + 2 * np.arange(n))
    a = p[:, None] * p[None, :]
    a = np.tril(a) - np.diag(np.arange(n))
    return -a


def hippo_low_rank(n: int) -> np.ndarray:
    """``P [n]`` with ``A + P P^T`` normal."""
    return np.sqrt(np.arange(n) + 0.5)


def hippo_normal_eig(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of HiPPO-N: ``(Λ [n] complex, V [n, n] unitary)`` with ``S = V diag(Λ) V^*``.

    The real part of every eigenvalue is exactly -1/2; eigenvalues come in conjugate pairs, sorted by
    imaginary part.
    """
    p = hippo_low_rank(n)
    s = hippo_legs(n) + p[:, None] * p[None, :]
    real = np.mean(np.diagonal(s))
    # S - real I is skew-symmetric, so -i (S - real I) is Hermitian: eigh gives a unitary V.
    imag, v = np.linalg.eigh(-1j * (s - real * np.eye(n)))
    return real + 1j * imag, v


def hippo_nplr(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """S4's NPLR form of HiPPO-LegS in the eigenbasis of its normal part.

    Returns ``(Λ [n], Pv [n], Bv [n], V [n, n])`` with ``V^* A V = diag(Λ) - Pv Pv^*`` and
    ``Bv = V^* B`` for the LegS input matrix ``B[n] = sqrt(2n+1)``.
    """
    lam, v = hippo_normal_eig(n)
    p = hippo_low_rank(n)
    b = np.sqrt(2 * np.arange(n) + 1.0)
    vh = v.conj().T
    return lam, vh @ p, vh @ b, v


def block_diagonal_eig(state_size: int, blocks: int, conj_sym: bool) -> tuple[np.ndarray, np.ndarray]:
    """S5's block-diagonal HiPPO-N init: ``blocks`` copies of the size ``state_size/blocks`` eigenbasis.

    Returns ``(Λ [P], V [state_size, P])`` where ``P = state_size/2`` under conjugate symmetry (one
    eigenvalue of every conjugate pair is kept) and ``state_size`` otherwise.
    """
    if state_size % blocks:
        raise ValueError(f"state_size {state_size} is not divisible by blocks {blocks}")
    block = state_size // blocks
    if conj_sym and block % 2:
        raise ValueError(f"conjugate symmetry needs an even block size, got {block}")
    lam, v = hippo_normal_eig(block)
    keep = block // 2 if conj_sym else block
    # eigh sorts by imaginary part: the second half holds one member of every conjugate pair.
    lam, v = lam[block - keep:], v[:, block - keep:]
    lam_all = np.tile(lam, blocks)
    v_all = np.zeros((state_size, keep * blocks), dtype=np.complex128)
    for j in range(blocks):
        v_all[j * block:(j + 1) * block, j * keep:(j + 1) * keep] = v
    return lam_all, v_all
