"""The platform model (hybridopt.platforms) driven by a clock: `testbed` serves it over HTTP on
127.0.0.1 with the wall clock; `simulate` runs it on a virtual clock. One model, two clocks."""
