// Internal model and workspace of CKinematics. Spatial vectors are split into a linear and an angular
// 3-vector (in that order, as in the rows of the Jacobians), expressed in a body's own frame unless the
// name says world ("o" prefix, as in Pinocchio's oMi).
#pragma once

#include <Eigen/Core>
#include <Eigen/Cholesky>
#include <Eigen/Geometry>
#include <cmath>
#include <vector>

#include "CKinematics.h"

namespace sk {

using Vec3 = Eigen::Vector3d;
using Mat3 = Eigen::Matrix3d;
using Mat6 = Eigen::Matrix<double, 6, 6>;
using Vec6 = Eigen::Matrix<double, 6, 1>;

// Which way a joint axis points, so the common cases (axis along +-x, +-y, +-z) skip Rodrigues.
enum class AxisKind : int { X, Y, Z, General };

// Rigid-body inertia about the body frame's origin: mass, first moment h = m·c, and rotational inertia
// about the origin. This form adds by plain summation and moves between frames without divisions.
struct Inertia {
    double mass = 0;
    Vec3 h = Vec3::Zero();
    Mat3 I = Mat3::Zero();

    // Momentum (linear, angular) of a body moving with spatial velocity (v, w).
    inline void apply(const Vec3 &v, const Vec3 &w, Vec3 &f, Vec3 &n) const {
        f = mass * v - h.cross(w);
        n = I * w + h.cross(v);
    }
    // This inertia (given in a child frame) expressed in the parent frame, the child's pose there being (R, p).
    inline Inertia toParent(const Mat3 &R, const Vec3 &p) const {
        Inertia out;
        out.mass = mass;
        const Vec3 hr = R * h;
        out.h = hr + mass * p;
        // Parallel-axis shift of the rotated inertia: (m p·p + 2 hr·p) E - (m p + hr) pᵀ - p hrᵀ.
        const Mat3 RI = R * I;
        out.I.noalias() = RI * R.transpose();
        const Vec3 a = mass * p + hr;
        const double diagonal = p.dot(a + hr);
        out.I.noalias() -= a * p.transpose();
        out.I.noalias() -= p * hr.transpose();
        out.I.diagonal().array() += diagonal;
        return out;
    }
    Mat6 matrix() const;
};

struct Body {
    int parent;
    int type;
    AxisKind axisKind;
    double axisSign;  // for the X/Y/Z kinds
    Mat3 placementR;
    Vec3 placementP;
    Vec3 axis;
    Inertia inertia;  // lumped inertia of every frame on this body, about the body origin
};

struct Frame {
    int body;
    Mat3 R;
    Vec3 p;
};

// Pose of body b relative to its parent at joint value q: the fixed placement followed by the joint motion.
inline void jointPlacement(const Body &b, double q, Mat3 &R, Vec3 &p) {
    const Mat3 &P = b.placementR;
    if (b.type == SK_JOINT_PRISMATIC) {
        R = P;
        p = b.placementP + P * (b.axis * q);
        return;
    }
    p = b.placementP;
    const double c = std::cos(q);
    const double s = b.axisSign * std::sin(q);
    switch (b.axisKind) {
    case AxisKind::X:
        R.col(0) = P.col(0);
        R.col(1) = c * P.col(1) + s * P.col(2);
        R.col(2) = c * P.col(2) - s * P.col(1);
        break;
    case AxisKind::Y:
        R.col(0) = c * P.col(0) - s * P.col(2);
        R.col(1) = P.col(1);
        R.col(2) = c * P.col(2) + s * P.col(0);
        break;
    case AxisKind::Z:
        R.col(0) = c * P.col(0) + s * P.col(1);
        R.col(1) = c * P.col(1) - s * P.col(0);
        R.col(2) = P.col(2);
        break;
    case AxisKind::General:
        R.noalias() = P * Eigen::AngleAxisd(q, b.axis).toRotationMatrix();
        break;
    }
}

// Motion subspace of a one-degree-of-freedom joint in its body frame, as (linear, angular).
inline void motionSubspace(const Body &b, Vec3 &lin, Vec3 &ang) {
    if (b.type == SK_JOINT_PRISMATIC) {
        lin = b.axis;
        ang.setZero();
    } else {
        lin.setZero();
        ang = b.axis;
    }
}

inline void writePose(const Mat3 &R, const Vec3 &p, double *out) {
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) out[3 * r + c] = R(r, c);
    out[9] = p.x();
    out[10] = p.y();
    out[11] = p.z();
}

inline void readPose(const double *in, Mat3 &R, Vec3 &p) {
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) R(r, c) = in[3 * r + c];
    p = Vec3(in[9], in[10], in[11]);
}

}  // namespace sk

struct sk_model {
    std::vector<sk::Body> bodies;
    std::vector<sk::Frame> frames;
    // support[i]: the bodies from the root down to i (inclusive), root first.
    std::vector<std::vector<int>> support;
    sk::Vec3 gravity;
    int nv;
};

namespace sk {
// RNEA for a q whose joint placements (liR, lip) forward kinematics has just written into data.
void rneaAfterKinematics(const sk_model *model, sk_data *data, const double *q, const double *v, const double *a,
                         double *tau);
}  // namespace sk

struct sk_data {
    // Joint placement relative to the parent (liMi) and world pose (oMi) of each body.
    std::vector<sk::Mat3, Eigen::aligned_allocator<sk::Mat3>> liR, oR;
    std::vector<sk::Vec3, Eigen::aligned_allocator<sk::Vec3>> lip, op;
    // Frame poses in the C layout (12 doubles each).
    std::vector<double> framePoses;
    // Velocities, accelerations and forces of the recursive algorithms, body frames.
    std::vector<sk::Vec3, Eigen::aligned_allocator<sk::Vec3>> vLin, vAng, aLin, aAng, fLin, fAng;
    // Composite / articulated inertias and ABA intermediate quantities.
    std::vector<sk::Inertia, Eigen::aligned_allocator<sk::Inertia>> composite;
    std::vector<sk::Mat6, Eigen::aligned_allocator<sk::Mat6>> articulated;
    std::vector<sk::Vec6, Eigen::aligned_allocator<sk::Vec6>> biasForce, biasAcc, U;
    std::vector<double> Dinv, u;
    // Simulation step scratch: system matrix and its factorisation, sized once.
    Eigen::MatrixXd stepMatrix;
    Eigen::VectorXd stepSolution, stepBias;
    // Zero joint accelerations, for the step's bias RNEA (never written after creation).
    Eigen::VectorXd zeroAcceleration;
    // Inverse-kinematics scratch.
    std::vector<double> ikQ, ikQTrial, ikStep, ikJacobian, ikReduced, ikLower, ikUpper;
    std::vector<int> ikActive;
};
