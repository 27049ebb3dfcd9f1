// Semi-implicit Euler step of the joint dynamics for the simulator: the mass matrix from CRBA, the bias
// from RNEA, the drives' damping taken implicitly, one Cholesky solve into preallocated storage.
#include "model.hpp"

using namespace sk;

extern "C" void sk_semi_implicit_step(const sk_model *model, sk_data *data, const double *q, const double *v,
                                      const double *tau, const double *damping, const double *armature, double dt,
                                      double *v_next) {
    const int n = model->nv;
    if (n == 0) return;
    Eigen::MatrixXd &A = data->stepMatrix;
    sk_crba(model, data, q, A.data());
    // Bias b(q, v): RNEA with zero acceleration. stepRhs doubles as the zero vector for a moment.
    data->stepRhs.setZero();
    sk_rnea(model, data, q, v, data->stepRhs.data(), data->stepBias.data());
    for (int i = 0; i < n; ++i) A(i, i) += armature[i];
    // Right-hand side (M + armature) v + dt (tau + damping v - b), before the damping enters A.
    Eigen::Map<const Eigen::VectorXd> vel(v, n);
    data->stepRhs.noalias() = A * vel;
    for (int i = 0; i < n; ++i) {
        data->stepRhs[i] += dt * (tau[i] + damping[i] * v[i] - data->stepBias[i]);
        A(i, i) += dt * damping[i];
    }
    data->stepFactor.compute(A);
    data->stepSolution = data->stepRhs;
    data->stepFactor.solveInPlace(data->stepSolution);
    for (int i = 0; i < n; ++i) v_next[i] = data->stepSolution[i];
}
