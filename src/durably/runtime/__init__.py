"""Code that runs inside an execution of a run: the run's context, the step loop,
the effects and their drivers, the primitives, composition and the run's ending."""
