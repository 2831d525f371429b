"""PS3.14 chapter 7: the Grayscale Standard Display Function L(j) and its inverse j(L).

The coefficients and the evaluation order are those of PS3.14, in double
precision (bit for bit as DCMTK computes them).
"""

from __future__ import annotations

import math

GSDF_JND_MIN = 1
GSDF_JND_MAX = 1023

# L(j) = 10^((a + c ln j + e ln^2 j + g ln^3 j + m ln^4 j) /
#            (1 + b ln j + d ln^2 j + f ln^3 j + h ln^4 j + k ln^5 j))
_A = -1.3011877
_B = -2.5840191e-2
_C = 8.0242636e-2
_D = -1.0320229e-1
_E = 1.3646699e-1
_F = 2.8745620e-2
_G = -2.5468404e-2
_H = -3.1978977e-3
_K = 1.2992634e-4
_M = 1.3635334e-3

# j(L) = A + B log10 L + C (log10 L)^2 + ... + I (log10 L)^8
_JA = 71.498068
_JB = 94.593053
_JC = 41.912053
_JD = 9.8247004
_JE = 0.28175407
_JF = -1.1878455
_JG = -0.18014349
_JH = 0.14710899
_JI = -0.017046845


def gsdf_luminance(j: float) -> float:
    """L(j) in cd/m2 for the JND index ``j`` (PS3.14 eq. 7-1; 1 <= j <= 1023).

    Values outside 1..1023 are computed by the same formula (the standard
    defines the function only inside); ``j`` must be positive.
    """
    if not j > 0:
        raise ValueError(f"the JND index must be positive, not {j!r}")
    ln = math.log(j)
    ln2 = ln * ln
    ln3 = ln2 * ln
    ln4 = ln3 * ln
    # The same terms in the same order as DCMTK (digsdfn.cc): identical bits.
    return math.pow(
        10.0,
        (_A + _C * ln + _E * ln2 + _G * ln3 + _M * ln4)
        / (1 + _B * ln + _D * ln2 + _F * ln3 + _H * ln4 + _K * (ln4 * ln)),
    )


def jnd_index(luminance: float) -> float:
    """j(L): the JND index of the luminance ``luminance`` in cd/m2 (PS3.14 eq. 7-2).

    The standard's inverse is a polynomial fit: j(L(j)) differs from j by
    less than 0.1 JND over 1..1023.  Defined for 0.05 <= L <= 4000 cd/m2;
    other positive luminances are computed by the same polynomial.
    """
    if not luminance > 0:
        raise ValueError(f"the luminance must be positive, not {luminance!r}")
    lg = [math.log10(luminance)]
    for _ in range(7):  # powers by repeated multiplication, as DCMTK does
        lg.append(lg[-1] * lg[0])
    return (
        _JA
        + _JB * lg[0]
        + _JC * lg[1]
        + _JD * lg[2]
        + _JE * lg[3]
        + _JF * lg[4]
        + _JG * lg[5]
        + _JH * lg[6]
        + _JI * lg[7]
    )


def gsdf_contrast(j: float) -> float:
    """The GSDF's contrast response at ``j``: dL/L for one JND, (L(j+½) - L(j-½)) / L(j)."""
    return (gsdf_luminance(j + 0.5) - gsdf_luminance(j - 0.5)) / gsdf_luminance(j)


_GSDF_TABLE: list[float] | None = None


def gsdf_table() -> list[float]:
    """L(j) for j = 1..1023 (index 0 is j = 1), the table of PS3.14 Annex B computed."""
    global _GSDF_TABLE
    if _GSDF_TABLE is None:
        _GSDF_TABLE = [gsdf_luminance(j) for j in range(GSDF_JND_MIN, GSDF_JND_MAX + 1)]
    return _GSDF_TABLE
