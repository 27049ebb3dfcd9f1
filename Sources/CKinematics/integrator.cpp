// Semi-implicit Euler step of the joint dynamics for the simulator: the mass matrix from CRBA, the bias
// from RNEA, the drives' damping taken implicitly, one Cholesky solve into preallocated storage.
#include <cmath>
#include <limits>

#include "model.hpp"

using namespace sk;

// In-place Cholesky factorisation A = L Lᵀ of the lower triangle of the column-major n×n matrix A, then the
// solution of A x = b in place of b. For the handful of joints of an arm this plain loop beats Eigen's
// dynamic-size LLT, whose blocking and bookkeeping are sized for large matrices (perf of `sinew sim eval`:
// the LLT and its two triangular solves took 4.5 % of a lockstep run). False when A is not positive definite
// (M + armature + dt·damping always is for a model that loaded; NaN inputs are not).
static bool choleskySolveInPlace(double *A, int n, double *b) {
    for (int j = 0; j < n; ++j) {
        double d = A[j + n * j];
        for (int k = 0; k < j; ++k) d -= A[j + n * k] * A[j + n * k];
        if (!(d > 0)) return false;
        const double ljj = std::sqrt(d);
        A[j + n * j] = ljj;
        const double inv = 1.0 / ljj;
        for (int i = j + 1; i < n; ++i) {
            double s = A[i + n * j];
            for (int k = 0; k < j; ++k) s -= A[i + n * k] * A[j + n * k];
            A[i + n * j] = s * inv;
        }
    }
    for (int i = 0; i < n; ++i) {  // L y = b
        double s = b[i];
        for (int k = 0; k < i; ++k) s -= A[i + n * k] * b[k];
        b[i] = s / A[i + n * i];
    }
    for (int i = n - 1; i >= 0; --i) {  // Lᵀ x = y
        double s = b[i];
        for (int k = i + 1; k < n; ++k) s -= A[k + n * i] * b[k];
        b[i] = s / A[i + n * i];
    }
    return true;
}

extern "C" void sk_semi_implicit_step(const sk_model *model, sk_data *data, const double *q, const double *v,
                                      const double *tau, const double *damping, const double *armature, double dt,
                                      double *v_next) {
    const int n = model->nv;
    if (n == 0) return;
    Eigen::MatrixXd &A = data->stepMatrix;
    sk_crba(model, data, q, A.data());
    // Bias b(q, v): RNEA with zero acceleration, on the joint placements CRBA's kinematics left.
    rneaAfterKinematics(model, data, q, v, data->zeroAcceleration.data(), data->stepBias.data());
    for (int i = 0; i < n; ++i) A(i, i) += armature[i];
    // Right-hand side (M + armature) v + dt (tau + damping v - b), before the damping enters A.
    double *rhs = data->stepSolution.data();
    for (int i = 0; i < n; ++i) {
        double s = 0;
        for (int k = 0; k < n; ++k) s += A(i, k) * v[k];
        rhs[i] = s + dt * (tau[i] + damping[i] * v[i] - data->stepBias[i]);
    }
    for (int i = 0; i < n; ++i) A(i, i) += dt * damping[i];
    if (!choleskySolveInPlace(A.data(), n, rhs)) {
        for (int i = 0; i < n; ++i) rhs[i] = std::numeric_limits<double>::quiet_NaN();
    }
    for (int i = 0; i < n; ++i) v_next[i] = rhs[i];
}
