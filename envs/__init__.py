"""Built-in environments: Safety-Gymnasium (`safety_gym`), the exact tabular CMDPs (`exact`), the continuous
quadratic bandit with a closed-form optimum (`quadratic_bandit`) and the text CMDP
(`text_registration`, `text/`). Each module registers its environments when imported; cmdp-lab's entry points
(group `cmdp.envs` in setup.cfg) name them, so nothing is imported here."""
