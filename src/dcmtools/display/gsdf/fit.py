"""DCMTK's interpolation of readings (dcmimgle displint.h, dicrvfit.h), reproduced exactly:
a natural cubic spline and a least-squares polynomial."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def _spline_second_derivatives(x: Sequence[float], y: Sequence[float]) -> list[float]:
    """Natural cubic spline: second derivatives at the knots (DiCubicSpline::Function)."""
    n = len(x)
    y2 = [0.0] * n
    u = [0.0] * n
    for i in range(1, n - 1):
        sig = (x[i] - x[i - 1]) / (x[i + 1] - x[i - 1])
        p = sig * y2[i - 1] + 2.0
        y2[i] = (sig - 1.0) / p
        u[i] = (y[i + 1] - y[i]) / (x[i + 1] - x[i]) - (y[i] - y[i - 1]) / (x[i] - x[i - 1])
        u[i] = (6.0 * u[i] / (x[i + 1] - x[i - 1]) - sig * u[i - 1]) / p
    qn = un = 0.0
    y2[n - 1] = (un - qn * u[n - 2]) / (qn * y2[n - 2] + 1.0) if n > 1 else 0.0
    for i in range(n - 1, 0, -1):
        y2[i - 1] = y2[i - 1] * y2[i] + u[i - 1]
    return y2


def _spline_interpolate(
    xa: Sequence[float], ya: Sequence[float], y2a: Sequence[float], xs: Iterable[float]
) -> list[float]:
    """Evaluate the spline at ``xs`` (DiCubicSpline::Interpolation, its search included)."""
    na = len(xa)
    out: list[float] = []
    klo, khi = 0, na - 1
    for x in xs:
        if xa[klo] > x or xa[khi] < x:
            klo, khi = 0, na - 1
        while khi - klo > 1:
            k = (khi + klo) >> 1
            if xa[k] > x:
                khi = k
            else:
                klo = k
        if xa[khi] == x:
            out.append(float(ya[khi]))
            continue
        h = float(xa[khi]) - float(xa[klo])
        if h == 0.0:
            raise ValueError("two readings at the same driving level")
        a = (float(xa[khi]) - x) / h
        b = (x - float(xa[klo])) / h
        out.append(
            a * ya[klo] + b * ya[khi] + ((a * a * a - a) * y2a[klo] + (b * b * b - b) * y2a[khi]) * (h * h) / 6.0
        )
    return out


def _polynomial_fit(x: Sequence[int], y: Sequence[float], order: int) -> list[float] | None:
    """Least-squares polynomial coefficients (DiCurveFitting::calculateCoefficients)."""
    n = len(x)
    size = order + 1
    basis = [0.0] * (size * n)
    for i in range(size):
        for j in range(n):
            k = i + j * size
            basis[k] = 1.0 if i == 0 else float(x[j]) * basis[k - 1]
    alpha = [0.0] * (size * size)
    for i in range(size):
        for j in range(i + 1):
            total = 0.0
            for k in range(n):
                total += basis[i + k * size] * basis[j + k * size]
            alpha[i + j * size] = total
            if i != j:
                alpha[j + i * size] = total
    beta = [0.0] * size
    for i in range(size):
        total = 0.0
        for j in range(n):
            total += float(y[j]) * basis[i + j * size]
        beta[i] = total
    if not _gauss_jordan(alpha, beta, size):
        return None
    return beta


def _gauss_jordan(a: list[float], b: list[float], n: int) -> bool:
    """DiCurveFitting::solve: Gauss-Jordan elimination with partial pivoting."""
    result = False
    for i in range(n):
        mag = 0.0
        pivot = -1
        for j in range(i, n):
            mag2 = abs(a[i + j * n])
            if mag2 > mag:
                mag = mag2
                pivot = j
        if pivot == -1 or mag == 0:
            break
        i_n = i * n
        if pivot != i:
            piv_n = pivot * n
            for j in range(i, n):
                a[j + i_n], a[j + piv_n] = a[j + piv_n], a[j + i_n]
            b[i], b[pivot] = b[pivot], b[i]
        mag = a[i + i_n]
        for j in range(i, n):
            a[j + i_n] /= mag
        b[i] /= mag
        for j in range(n):
            if i == j:
                continue
            j_n = j * n
            mag2 = a[i + j_n]
            for k in range(i, n):
                a[k + j_n] -= mag2 * a[k + i_n]
            b[j] -= mag2 * b[i]
        result = True
    return result


def _polynomial_values(start: int, end: int, count: int, order: int, coeff: Sequence[float]) -> list[float]:
    """DiCurveFitting::calculateValues for a double table."""
    xi = (float(end) - float(start)) / (count - 1)
    values = []
    for i in range(count):
        x = float(start) + float(i) * xi
        x2 = 1.0
        w = 0.0
        for j in range(order + 1):
            w += coeff[j] * x2
            x2 *= x
        values.append(w)
    return values
