// Inverse kinematics of one frame: Levenberg-Marquardt on the 6-D pose error over the independent joints
// that move the frame, projected onto the joint limits, with random restarts inside a time budget.
#include <time.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "model.hpp"

using namespace sk;

namespace sk {
void supportKinematics(const sk_model *model, sk_data *data, const double *q, int body);
void jacobianColumns(const sk_model *model, const sk_data *data, int body, const Vec3 &pf, double *J);
}  // namespace sk

namespace {
double nowSeconds() {
    timespec ts;
    // CPU time of this thread: being preempted by other work must not make a solvable target fail.
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

uint64_t splitmix(uint64_t &state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double uniform(uint64_t &state) { return double(splitmix(state) >> 11) * (1.0 / 9007199254740992.0); }

struct Problem {
    const sk_model *model;
    sk_data *data;
    const sk_ik_problem *p;
    int body;
    Mat3 frameR;
    Vec3 frameP;
    Mat3 targetR;
    Vec3 targetP;
    int nActive;

    int master(int i) const { return p->mimic_master ? p->mimic_master[i] : -1; }

    // Mimic joints follow their masters; independent joints are clamped into their limits.
    void project(double *q) const {
        const int n = model->nv;
        for (int i = 0; i < n; ++i) {
            if (master(i) >= 0) continue;
            const double lo = p->lower[i], hi = p->upper[i];
            if (q[i] < lo) q[i] = lo;
            if (q[i] > hi) q[i] = hi;
        }
        for (int i = 0; i < n; ++i) {
            const int m = master(i);
            if (m >= 0) q[i] = p->mimic_multiplier[i] * q[m] + p->mimic_offset[i];
        }
    }

    // Pose error (target minus current): position (m) and rotation vector (rad), world frame.
    void error(const double *q, Vec6 &e, Vec3 &framePos) const {
        supportKinematics(model, data, q, body);
        Mat3 R = frameR;
        framePos = frameP;
        if (body >= 0) {
            R = data->oR[body] * frameR;
            framePos = data->oR[body] * frameP + data->op[body];
        }
        e.head<3>() = targetP - framePos;
        const Eigen::AngleAxisd aa(Mat3(targetR * R.transpose()));
        e.tail<3>() = aa.angle() * aa.axis();
    }

    // Jacobian over the active independent joints (6 x nActive, column-major) at the current poses.
    void reducedJacobian(const Vec3 &framePos) const {
        double *J = data->ikJacobian.data();
        double *Jr = data->ikReduced.data();
        jacobianColumns(model, data, body, framePos, J);
        std::memset(Jr, 0, sizeof(double) * 6 * nActive);
        const int n = model->nv;
        for (int k = 0; k < nActive; ++k) {
            const int a = data->ikActive[k];
            for (int r = 0; r < 6; ++r) Jr[6 * k + r] = J[6 * a + r];
        }
        // A mimic joint moves with its master: its column adds to the master's, scaled.
        for (int i = 0; i < n; ++i) {
            const int m = master(i);
            if (m < 0) continue;
            for (int k = 0; k < nActive; ++k) {
                if (data->ikActive[k] != m) continue;
                for (int r = 0; r < 6; ++r) Jr[6 * k + r] += p->mimic_multiplier[i] * J[6 * i + r];
            }
        }
    }

    void randomConfiguration(double *q, uint64_t &rng) const {
        for (int k = 0; k < nActive; ++k) {
            const int a = data->ikActive[k];
            double lo = p->lower[a], hi = p->upper[a];
            if (!std::isfinite(lo) || !std::isfinite(hi)) {
                lo = -M_PI;
                hi = M_PI;
            }
            q[a] = lo + (hi - lo) * uniform(rng);
        }
        project(q);
    }
};
}  // namespace

extern "C" sk_ik_result sk_ik_solve(const sk_model *model, sk_data *data, const sk_ik_problem *problem,
                                    const double *q_seed, double *q_out) {
    sk_ik_result result{0, 0, 0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()};
    const int n = model->nv;
    const Frame &fr = model->frames[problem->frame];
    Problem P{model, data, problem, fr.body, fr.R, fr.p, Mat3(), Vec3(), 0};
    readPose(problem->target, P.targetR, P.targetP);

    // Active joints: the independent joints (masters) of every joint supporting the frame.
    int *active = data->ikActive.data();
    if (fr.body >= 0) {
        for (int j : model->support[fr.body]) {
            const int m = P.master(j) >= 0 ? P.master(j) : j;
            bool seen = false;
            for (int k = 0; k < P.nActive; ++k) seen |= active[k] == m;
            if (!seen) active[P.nActive++] = m;
        }
    }

    double *q = data->ikQ.data();
    double *trial = data->ikQTrial.data();
    double *best = q_out;
    std::memcpy(q, q_seed, sizeof(double) * n);
    P.project(q);
    std::memcpy(best, q, sizeof(double) * n);
    double bestCost = std::numeric_limits<double>::infinity();

    const double start = nowSeconds();
    const double tol = problem->tolerance;
    const int maxIterations = problem->max_iterations > 0 ? problem->max_iterations : 100;
    uint64_t rng = problem->random_seed;
    Eigen::Map<Eigen::Matrix<double, 6, Eigen::Dynamic>> Jr(data->ikReduced.data(), 6, P.nActive);

    for (;;) {
        result.attempts += 1;
        Vec6 e;
        Vec3 framePos;
        P.error(q, e, framePos);
        double cost = e.squaredNorm();
        double lambda = 1e-6;
        int slow = 0;
        P.reducedJacobian(framePos);
        for (int it = 0; it < maxIterations; ++it) {
            result.iterations += 1;
            const double ep = e.head<3>().norm(), er = e.tail<3>().norm();
            if (cost < bestCost) {
                bestCost = cost;
                std::memcpy(best, q, sizeof(double) * n);
                result.position_error = ep;
                result.rotation_error = er;
            }
            if (ep < tol && er < tol) {
                result.success = 1;
                return result;
            }
            // Damped least-squares step. Joints resting on a limit that the step pushes further out are
            // taken out of the step and it is solved again, so the others do the work (an active set).
            double *blocked = data->ikStep.data();
            for (int k = 0; k < P.nActive; ++k) blocked[k] = 0;
            for (int pass = 0; pass < 2; ++pass) {
                Eigen::Matrix<double, 6, 6> A = Eigen::Matrix<double, 6, 6>::Zero();
                for (int k = 0; k < P.nActive; ++k)
                    if (blocked[k] == 0) A.noalias() += Jr.col(k) * Jr.col(k).transpose();
                A.diagonal().array() += lambda;
                const Vec6 y = A.ldlt().solve(e);
                std::memcpy(trial, q, sizeof(double) * n);
                bool changed = false;
                for (int k = 0; k < P.nActive; ++k) {
                    if (blocked[k] != 0) continue;
                    const int a = active[k];
                    const double step = Jr.col(k).dot(y);
                    trial[a] += step;
                    if ((q[a] <= problem->lower[a] && step < 0) || (q[a] >= problem->upper[a] && step > 0)) {
                        blocked[k] = 1;
                        changed = true;
                    }
                }
                if (!changed) break;
            }
            P.project(trial);
            Vec6 eTrial;
            Vec3 posTrial;
            P.error(trial, eTrial, posTrial);
            const double costTrial = eTrial.squaredNorm();
            if (costTrial < cost) {
                slow = costTrial > 0.9 * cost ? slow + 1 : 0;
                std::memcpy(q, trial, sizeof(double) * n);
                e = eTrial;
                cost = costTrial;
                P.reducedJacobian(posTrial);
                lambda = std::max(lambda * 0.1, 1e-12);
            } else {
                lambda *= 10.0;
                slow += 1;
            }
            // Stuck in a local minimum or against a limit: a fresh start pays off sooner.
            if (slow > 8 || lambda > 1e4) break;
        }
        if (nowSeconds() - start > problem->time_budget_s) break;
        P.randomConfiguration(q, rng);
    }
    return result;
}
