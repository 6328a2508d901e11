"""The platform model: AWS Lambda behind API Gateway and ECS Fargate behind an ALB, plus the client's
network, as plain event-driven state machines (SimFaaS-style). Given a request sent at model time t
(seconds), they return its outcome. No wall clock, sleeps or threads inside; randomness from the numpy
Generator passed in. The testbed (hybridopt.testbed) drives these objects with the wall clock, the
simulator (hybridopt.simulate) with a virtual clock: one model, two clocks.

Parameters: params/testbed.yaml (`Params.testbed`), each value with its source.
"""

from .draws import Draws
from .fargate import FargatePlatform, FargateService
from .lambda_ import LambdaFunction, LambdaPlatform
from .model import PLATFORMS, PlatformModel, check_presets
from .network import ClientNetwork
from .outcome import Outcome, Pending
from .service import ServiceTime

__all__ = ["PLATFORMS", "ClientNetwork", "Draws", "FargatePlatform", "FargateService", "LambdaFunction",
           "LambdaPlatform", "Outcome", "Pending", "PlatformModel", "ServiceTime", "check_presets"]
