"""The demo's exchange-board step (docs/exchange.md): members post offers and needs, one
member answers an offer, they agree an arrangement, the provider asks for the payment through
a payment request linked to it, and the receiver pays it with a signed transfer. No ranking:
the board is shown newest first."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from .. import signing
from ..core.rules import can_spend
from ..exchange import Exchange
from ..requests import PaymentRequests


def run(ledger, domain, carers, clients, shops, console: Console) -> dict:
    board = Exchange(ledger)
    requests = PaymentRequests(ledger)
    posts = [
        (carers[0], {"kind": "offer", "title": "Elderly care, weekday mornings", "category": "elderly_care",
                     "description": "Company, walks and help with shopping.", "area": "centro",
                     "currency": "HOUR", "priceUnit": "hour", "price": 60, "availability": "Mon-Fri 9-12"}),
        (clients[0], {"kind": "need", "title": "3 h of help after surgery", "category": "errands",
                      "description": "Shopping and cooking, 12-14 May.", "area": "norte",
                      "currency": "HOUR", "priceUnit": "agree", "price": None}),
        (carers[1], {"kind": "offer", "title": "Lifts to the health centre", "category": "transport",
                     "description": "", "area": "sur", "currency": "HOUR", "priceUnit": "hour", "price": 60}),
        (shops[0], {"kind": "offer", "title": "Sourdough bread", "category": "goods", "description": "Daily.",
                    "area": "centro", "currency": "CRED", "priceUnit": "item", "price": 350}),
    ]
    posted = [board.post(p.address, p.role, fields) for p, fields in posts]
    page, _, _ = board.search(order="newest")
    console.print(f"posted {len(posted)} listings; the board, newest first (no ranking, no author shown):")
    for item in page:
        console.print(escape(f"  {item.kind:5} {item.title} [{item.category}, {item.area}]"))

    # the client with the most HOUR left to spend (balance down to the credit limit) answers the
    # carer's care offer: an hour, or what that client can still spend (a random community may
    # have brought everyone close to the limit)
    carer = carers[0]

    def room(p) -> int:
        return can_spend(ledger.positions(p.address)[(p.address, "HOUR")])

    client = max(clients[1:], key=room)
    minutes = max(1, min(60, room(client)))
    conv, _ = board.answer(posted[0].id, client.address, client.role, "I'm interested: Tuesday morning?")
    board.send(conv.id, carer.address, "Yes, 10:00 suits me.")
    deal = board.propose(conv.id, client.address, {"what": "Morning company and a walk", "when": "Tuesday 10:00",
                                                   "currency": "HOUR", "amount": minutes})
    board.accept(deal.id, carer.address)
    deal, request = board.request_payment(deal.id, carer.address, memo="Tuesday walk")
    sub = signing.transfer(client.key, domain, payee=carer.address, currency="HOUR", amount=request.amount,
                           request_id=bytes.fromhex(request.id[2:]))
    posted_payment = requests.pay(request.id, sub)
    deal = board.arrangement(deal.id, carer.address)
    board.thank(deal.id, client.address, "Thank you, it was lovely.")
    console.print(f"{client.name} and {carer.name} agreed '{deal.what}' ({minutes} min); {carer.name} sent payment "
                  f"request {request.id[:10]}…, {client.name} paid it in entry {posted_payment.seq}: "
                  f"arrangement [green]{deal.status}[/]")
    return {"listings": len(posted), "arrangement": deal.status, "paid_seq": posted_payment.seq}
