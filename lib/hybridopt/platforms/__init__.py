"""The platform model: AWS Lambda behind API Gateway and ECS Fargate behind an ALB, plus the client's
network, as plain event-driven state machines (SimFaaS-style). Given a request sent at model time t
(seconds), they return its outcome. No wall clock, sleeps or threads inside; randomness from the numpy
Generator passed in. The testbed (hybridopt.emulation.testbed) drives these objects with the wall clock, the
simulator (hybridopt.emulation.simulate) with a virtual clock: one model, two clocks.

Parameters: params/testbed.yaml (`Params.testbed`), each value with its source.
"""

from hybridopt.platforms.draws import Draws
from hybridopt.platforms.fargate import FargatePlatform, FargateService
from hybridopt.platforms.lambda_ import LambdaFunction, LambdaPlatform
from hybridopt.platforms.model import PLATFORMS, PlatformModel, check_presets
from hybridopt.platforms.network import ClientNetwork
from hybridopt.platforms.outcome import Outcome, Pending
from hybridopt.platforms.service import ServiceTime

__all__ = ["PLATFORMS", "ClientNetwork", "Draws", "FargatePlatform", "FargateService", "LambdaFunction",
           "LambdaPlatform", "Outcome", "Pending", "PlatformModel", "ServiceTime", "check_presets"]
