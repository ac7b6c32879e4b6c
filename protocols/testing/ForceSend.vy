# pragma version ~=0.4.3
"""
@title ForceSend
@notice Test-only: forces ether into a contract without calling it (selfdestruct), as a
        griefer could, to check that JobEscrow's accounting tolerates it (held <= balance).
"""


@deploy
@payable
def __init__():
    pass


@external
def force(target: address):
    selfdestruct(target)
