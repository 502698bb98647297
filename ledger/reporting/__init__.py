"""What accountants read: the projector keeps monthly totals (`projector`), folded into balances
(`balances`) and metrics (`metrics`), reported (`reports`) in any currency (`fx`), listed
(`queries`), exported (`exports`) and explained entry by entry (`explain`).
"""

__all__ = ["balances", "explain", "exports", "fx", "metrics", "projector", "queries", "reports"]
