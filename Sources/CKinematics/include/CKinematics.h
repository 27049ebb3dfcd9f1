/*
 * CKinematics: rigid-body kinematics and dynamics of a kinematic tree, C++17 over Eigen 3.4 behind a
 * plain C interface.
 *
 * Model/data split: an sk_model is built once from plain descriptions and never changes; an sk_data is
 * a workspace sized for one model. No function below allocates after sk_data_create.
 *
 * Conventions
 * - A "body" is the child link of a moving joint (revolute or prismatic, one degree of freedom each),
 *   listed so that a parent always comes before its children. Degree of freedom i belongs to body i.
 * - A "frame" is any link of the robot description (moving or attached through fixed joints), placed
 *   rigidly on a body, or on the base when its body index is -1. Inertias are given per frame and are
 *   lumped into their body.
 * - Poses are 12 doubles: rotation row-major (9) then translation (3), metres.
 * - Jacobians are 6 x nv, column-major (one joint's 6-vector after the other), rows
 *   [vx, vy, vz, wx, wy, wz], LOCAL_WORLD_ALIGNED: velocity of the frame origin and angular velocity,
 *   both in the world (base) frame.
 * - Matrices (mass matrix) are nv x nv column-major.
 * - Units: rad, m, kg, kg·m², N·m / N, rad/s, m/s.
 */
#ifndef SINEW_CKINEMATICS_H
#define SINEW_CKINEMATICS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_model sk_model;
typedef struct sk_data sk_data;

enum { SK_JOINT_REVOLUTE = 0, SK_JOINT_PRISMATIC = 1 };

typedef struct {
    /** Parent body index, or -1 when the parent is the base. Must be lower than this body's index. */
    int32_t parent;
    /** SK_JOINT_REVOLUTE or SK_JOINT_PRISMATIC. */
    int32_t type;
    /** Pose of the joint frame in the parent body's frame at q = 0 (rotation row-major, translation). */
    double placement[12];
    /** Unit joint axis in the joint frame. */
    double axis[3];
} sk_body_desc;

typedef struct {
    /** Body the frame is attached to, or -1 for the base. */
    int32_t body;
    /** Pose of the frame in its body's frame (rotation row-major, translation). */
    double placement[12];
    /** Mass (kg), centre of mass in the frame (m), and inertia about the centre of mass in the frame's
     * axes (kg·m²): ixx ixy ixz iyy iyz izz. A massless frame has mass 0. */
    double mass;
    double com[3];
    double inertia[6];
} sk_frame_desc;

/** Builds a model. Returns NULL when the descriptions are inconsistent (parent order, indices). */
sk_model *sk_model_create(const sk_body_desc *bodies, int32_t nbodies, const sk_frame_desc *frames,
                          int32_t nframes, const double gravity[3]);
void sk_model_destroy(sk_model *model);
int32_t sk_model_nv(const sk_model *model);
int32_t sk_model_nframes(const sk_model *model);

sk_data *sk_data_create(const sk_model *model);
void sk_data_destroy(sk_data *data);

/** Forward kinematics of every body and every frame. */
void sk_forward_kinematics(const sk_model *model, sk_data *data, const double *q);
/** Forward kinematics of the bodies only (no frames). */
void sk_forward_kinematics_bodies(const sk_model *model, sk_data *data, const double *q);
/** World pose of a frame after sk_forward_kinematics: 12 doubles (see conventions). */
void sk_frame_pose(const sk_data *data, int32_t frame, double out_pose[12]);
/** Pointer to all frame poses after sk_forward_kinematics: nframes x 12 doubles. */
const double *sk_frame_poses(const sk_data *data);

/** Frame Jacobian (LOCAL_WORLD_ALIGNED), 6 x nv column-major. Computes the kinematics it needs from
 * q along the frame's support; columns of joints not supporting the frame are zero. */
void sk_frame_jacobian(const sk_model *model, sk_data *data, const double *q, int32_t frame, double *jacobian);

/** Inverse dynamics (RNEA): joint forces tau (nv) giving acceleration a at (q, v) under gravity. */
void sk_rnea(const sk_model *model, sk_data *data, const double *q, const double *v, const double *a, double *tau);
/** Gravity torques: RNEA with v = a = 0. */
void sk_gravity(const sk_model *model, sk_data *data, const double *q, double *tau);
/** Joint-space mass matrix (CRBA), nv x nv column-major, both triangles filled. */
void sk_crba(const sk_model *model, sk_data *data, const double *q, double *mass_matrix);
/** Forward dynamics (ABA): joint accelerations ddq (nv) under joint forces tau at (q, v), gravity
 * included. */
void sk_aba(const sk_model *model, sk_data *data, const double *q, const double *v, const double *tau, double *ddq);

/** One semi-implicit Euler step of the joint dynamics, for simulation: solves
 *  (M(q) + diag(armature) + dt·diag(damping)) v' = (M(q) + diag(armature)) v + dt·(tau + diag(damping)·v - b(q, v))
 * for the new velocities v' (nv), where b is the bias of RNEA (Coriolis, centrifugal, gravity). `tau` is the
 * joint force at the start of the step and `damping` its slope -dtau/dv (back-EMF, viscous friction, >= 0):
 * treating that part implicitly keeps stiff geared motors stable at a fixed step. `armature` is the reflected
 * rotor inertia of each joint's drive (kg·m² or kg), added to the mass matrix diagonal.
 * The caller then advances q += dt·v'. Allocation-free. */
void sk_semi_implicit_step(const sk_model *model, sk_data *data, const double *q, const double *v,
                           const double *tau, const double *damping, const double *armature, double dt,
                           double *v_next);

/** Inverse kinematics problem for one frame. Arrays are owned by the caller. */
typedef struct {
    int32_t frame;
    /** Target pose of the frame in the world (rotation row-major, translation). */
    double target[12];
    /** Joint limits (nv each); use +-infinity for unlimited (continuous) joints. */
    const double *lower;
    const double *upper;
    /** Mimic coupling (nv each): mimic_master[i] = index of the master dof, or -1 when i is
     * independent; q[i] = multiplier[i] * q[master] + offset[i]. May be NULL. */
    const int32_t *mimic_master;
    const double *mimic_multiplier;
    const double *mimic_offset;
    /** Convergence: position error (m) and rotation error (rad) both below. */
    double tolerance;
    /** Time budget in seconds (restarts stop when exceeded), and maximum iterations per attempt. */
    double time_budget_s;
    int32_t max_iterations;
    /** Seed of the random restarts. */
    uint64_t random_seed;
} sk_ik_problem;

typedef struct {
    int32_t success;
    int32_t attempts;
    int32_t iterations;
    double position_error;
    double rotation_error;
} sk_ik_result;

/** Solves inverse kinematics starting from q_seed (nv). Writes the best configuration found into
 * q_out (nv). Allocation-free. */
sk_ik_result sk_ik_solve(const sk_model *model, sk_data *data, const sk_ik_problem *problem,
                         const double *q_seed, double *q_out);

#ifdef __cplusplus
}
#endif

#endif
