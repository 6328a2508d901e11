"""Parameters: `params/base.yaml` + `params/testbed.yaml` + `params/<profile>.yaml`, deep-merged in
that order and validated (`load_params`). Any unknown key, wrong type or missing file raises
`ParamsError` naming the file, the dotted key and what was expected.

The sections live by stage: `experiment` (data, workloads, schedule, prices, labels, features,
training), `testbed` (the platform model, every value sourced), `stages` (router, deploy, A/B,
collection), `infra` (the experiment's AWS stacks); `load` holds the whole `Params` and the loader."""

from hybridopt.params.common import ParamsError  # noqa: F401
from hybridopt.params.experiment import (  # noqa: F401
    Audit,
    CostOptions,
    DataPaths,
    FargateTask,
    Features,
    Gates,
    Labels,
    LoadPattern,
    ModelSearch,
    Pairing,
    Phase,
    Price,
    Prices,
    SearchValue,
    Selection,
    Split,
    TimeWindow,
    Training,
    Verdict,
    Workload,
)
from hybridopt.params.closedloop import ClosedLoop, ClosedLoopReplay  # noqa: F401
from hybridopt.params.infra import HealthCheck, InfraParams, PlatformLogsJoin  # noqa: F401
from hybridopt.params.load import (  # noqa: F401
    BASE_FILES,
    Params,
    known_profiles,
    load_params,
    profile_files,
)
from hybridopt.params.stages import (  # noqa: F401
    AB,
    Collection,
    Decision,
    DecisionObjective,
    DecisionSetting,
    Deploy,
    GeneratorLimits,
    Router,
)
from hybridopt.params.testbed import (  # noqa: F401
    Autoscaling,
    Basis,
    ClientInflation,
    ClientPreset,
    FargateModel,
    KeepAlive,
    LambdaModel,
    ServiceEntry,
    ServicePreset,
    Sourced,
    TestbedParams,
)

__all__ = ['AB', 'Audit', 'Autoscaling', 'ClosedLoop', 'ClosedLoopReplay', 'BASE_FILES', 'Basis', 'ClientInflation', 'ClientPreset', 'Collection', 'CostOptions', 'DataPaths', 'Decision', 'DecisionObjective', 'DecisionSetting', 'Deploy', 'FargateModel', 'FargateTask', 'Features', 'Gates', 'GeneratorLimits', 'HealthCheck', 'InfraParams', 'KeepAlive', 'Labels', 'LambdaModel', 'LoadPattern', 'ModelSearch', 'Pairing', 'Params', 'ParamsError', 'Phase', 'PlatformLogsJoin', 'Price', 'Prices', 'Router', 'SearchValue', 'Selection', 'ServiceEntry', 'ServicePreset', 'Sourced', 'Split', 'TestbedParams', 'TimeWindow', 'Training', 'Verdict', 'Workload', 'known_profiles', 'load_params', 'profile_files']
