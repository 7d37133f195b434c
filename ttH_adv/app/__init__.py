"""The app: the command line, the demo and the stage functions they both call (the top layer of ttH_adv)."""
