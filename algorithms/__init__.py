"""Built-in solvers, one module each, registered by name through cmdp-lab's entry points (group
`cmdp.algorithms` in setup.cfg); nothing is imported here."""
