"""The router: the Lambda inference handler (handler.py) with its event layer (events.py), the
decide stage's objective policy as it is served (policy.py) and the pure-Python tree evaluators
(trees.py); packaging (package.py), boto3 deployment (deploy.py) and measurements (bench.py).

This __init__ imports nothing: the Lambda package ships hybridopt/{__init__,errors,model_dir}.py,
hybridopt/data/{__init__,contract,features}.py, hybridopt/decision/{__init__,load_state,objective}.py
and hybridopt/router/{__init__,events,handler,policy,trees}.py only, with no third-party dependency
but tzdata.
"""
