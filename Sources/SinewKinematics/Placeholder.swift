import CKinematics
import SinewCore
