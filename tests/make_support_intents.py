"""Writes ``assets/examples/support_intents.csv``: 420 customer-support messages, four intents, 105 each.

Each message is one of many hand-written requests per intent, sometimes with a greeting, an order or account
detail, a sign-off, typing slips or lower case, the way real tickets arrive (seeded, so always the same file).
A few requests mention a second topic (a refund for a parcel that never came is billing; a crash while paying
is a technical issue), so the set is not separable by one keyword. ``python tests/make_support_intents.py``
rebuilds the file.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

INTENTS = {
    "billing": [
        'Why did my monthly payment go from $9.99 to $14.99 without any notice?',
        'I see two pending transactions from you on my banking app',
        'Can you send the receipt to my work email instead?',
        'The trial was supposed to be free, why was I billed?',
        'I want a partial refund, one of the three items was missing from the box',
        'Your site took the money but the order never went through',
        "I'd like to pay by bank transfer, is that possible?",
        'Do you charge extra for paying with American Express?',
        'I was promised a price match but the difference was never credited',
        'My company needs the invoices every month for accounting',
        "The coupon from your newsletter says it's invalid at checkout",
        'Can I change my plan to the cheaper one before the next billing date?',
        'I was billed for an order I cancelled within an hour',
        'Where do I see my payment history?',
        'You charged the old card that I removed from my profile',
        'I need my money back today, the product is not what was advertised',
        'Is tax included in the price shown or added at the end?',
        'Why is the amount on my statement different from the order confirmation?',
        'The store credit from my return has disappeared from my account',
        'Can I use two gift cards on one order?',
        "I was charged twice for the same order",
        "Why is there a charge of {amount} on my card that I don't recognise?",
        "I cancelled my subscription but you still took {amount} this month",
        "Can I get a refund for order {order}? I returned it two weeks ago",
        "Where can I download the invoice for my last purchase?",
        "The price at checkout was higher than the one on the product page",
        "My discount code was not applied and I paid full price",
        "I need a VAT invoice with my company name on it",
        "You billed me for the annual plan, I signed up for monthly",
        "How do I change the credit card you charge every month?",
        "The refund you promised still hasn't reached my bank account",
        "My payment was declined but the money left my account anyway",
        "Can you split the payment into instalments?",
        "I was charged a shipping fee even though I have free delivery with my membership",
        "Please stop the automatic renewal, I don't want to be charged again",
        "The package never arrived so I want my money back",
        "There is a late fee on my statement and I paid on time",
        "I got charged in dollars instead of euros, can you fix the currency?",
        "How much will I pay if I upgrade to the premium plan halfway through the month?",
        "My invoice shows the wrong billing address",
        "I paid with PayPal and the order still says awaiting payment",
        "Your app charged me for an in-app purchase I never confirmed",
        "Can I get a receipt for the {amount} I paid yesterday?",
        "I'd like to know why my bill went up this month",
        "The gift card balance was not deducted and my card was charged instead",
        "I returned the damaged item, when will the credit show up?",
        "Is there a student discount on the yearly subscription?",
        "I was overcharged on order {order}",
        "Please cancel the pending payment, I ordered the wrong size",
        "How do I get my money back for a duplicate subscription?",
    ],
    "delivery": [
        "The courier says the address doesn't exist but it's correct",
        "Can you hold my package at the depot until I'm back from holiday?",
        'The parcel is too big for my mailbox, where will they leave it?',
        "It's been three weeks and my order still hasn't left the warehouse",
        'The driver asked me to pay a customs fee on delivery, is that normal?',
        'I moved house last week, can the parcel be redirected?',
        'Why does my order show two different tracking numbers?',
        'The delivery slot I picked is not available anymore',
        "My neighbour got my parcel and won't give it back",
        "The tracking says 'exception' what does that mean?",
        'Half of the bottles in the box arrived broken',
        'Can I add an item to my order before it ships?',
        'What time will the van come tomorrow?',
        'The return I sent back two weeks ago still shows as not received',
        'Do you offer same-day delivery in the city centre?',
        'My order was marked as delivered to a locker I never chose',
        'The shipping confirmation email never came',
        'Why is delivery to the islands so slow?',
        'The parcel came without the instruction booklet and the charger',
        "I'm waiting at home all day and nobody came",
        "Where is my order {order}? It was supposed to arrive {day}",
        "The tracking number doesn't work on the courier's website",
        "My parcel says delivered but I never received it",
        "Can I change the delivery address for order {order}?",
        "How long does shipping to {country} usually take?",
        "The courier left the box outside in the rain",
        "I only received part of my order, one item is missing",
        "Tracking hasn't updated for five days",
        "Can you deliver on Saturday? I'm at work during the week",
        "The box arrived crushed and the item inside is broken",
        "I got someone else's package instead of mine",
        "Is express shipping available for my area?",
        "My order has been stuck in customs for a week",
        "The delivery driver never rang the bell and left a note",
        "Can I pick up my order from a store instead?",
        "When will order {order} be shipped? It still says processing",
        "Do you ship to PO boxes?",
        "I need the package before {weekday}, can you speed it up?",
        "The tracking shows it went back to the warehouse, why?",
        "Can I reschedule the delivery to next week?",
        "The parcel was delivered to my neighbour without asking me",
        "You sent me the wrong colour",
        "My order was split into two shipments and only one arrived",
        "How do I return an item? I need a shipping label",
        "The estimated delivery date keeps moving",
        "Is it possible to leave the parcel with the concierge?",
        "Order {order} shows shipped but there's no tracking link",
        "Which courier do you use for deliveries to {country}?",
        "The item arrived late and I no longer need it, can I send it back?",
        "I was charged for express delivery but it came with standard post",
    ],
    "account": [
        'The verification email goes to an address I no longer use',
        "I keep getting 'user not found' although I have ordered before",
        'How do I remove my old credit card from my profile?',
        'My kids made an account with my email, how do I take it over?',
        'I want to stop you from storing my payment details',
        'Can I change the language of my account emails?',
        'I was logged out and now it asks for a password I never set',
        'How do I link my loyalty card to my online account?',
        "Please change the phone number on my account, I can't receive texts on the old one",
        'Your app says my session expired every time I open it',
        'I think my account was hacked, the email address was changed',
        'Can I have a business account and a personal one with the same email?',
        "I'd like to export my wishlist and order history",
        "The security questions I set up don't work anymore",
        "I never created an account but I'm getting emails from you",
        'How do I see which devices are logged in to my account?',
        "My date of birth is wrong on my profile and I can't edit it",
        "I can't accept the new terms, the button is greyed out",
        'How long do you keep my data after I close my account?',
        "The passkey login doesn't work on my new laptop",
        "I can't log in, it says my password is wrong",
        "How do I reset my password? The email never arrives",
        "My account has been locked after too many attempts",
        "I want to change the email address on my account",
        "Please delete my account and all my data",
        "I'm not receiving the two-factor authentication code",
        "Someone else might have access to my account, I see orders I didn't make",
        "How do I change my username?",
        "I lost my phone and can't get the verification code anymore",
        "I signed up with Google and now I can't log in with my email",
        "Can I merge my two accounts into one?",
        "The reset link says it has expired",
        "How do I turn off the marketing emails?",
        "I want to add my partner as a second user on my account",
        "My account was suspended and I don't know why",
        "Where do I update my phone number?",
        "I forgot which email I used to register",
        "Can I download a copy of my personal data?",
        "The login page keeps sending me back to the start",
        "I changed my password but I'm still logged in on my old laptop, how do I log out everywhere?",
        "How can I make my profile private?",
        "Please unlock my account, I'm the owner and I can prove it",
        "I'd like to close my account but keep my order history",
        "I can't update my saved address in my profile",
        "Is it possible to change the name on my account after I got married?",
        "My account shows another person's name",
        "How do I enable two-step verification?",
        "I got an email saying my password was changed but it wasn't me",
        "I can't sign in since I changed my phone number",
        "Why do I have to verify my identity again?",
    ],
    "technical": [
        "The payment form rejects my postcode even though it's valid",
        'When I zoom in on product photos the page crashes',
        'Your website is down, I get a timeout',
        'The app shows prices in the wrong currency after the update',
        "The 'forgot password' page gives an error 404",
        "I can't scroll the order history page on my phone",
        'The checkout button is hidden behind the cookie banner',
        'My order confirmation email has broken images and strange characters',
        "The app keeps asking me to update but the store says it's up to date",
        'Adding a delivery note makes the checkout page reload and lose my basket',
        "The size guide doesn't open, it just spins",
        "Voice search in the app doesn't understand anything",
        'The app crashes when I try to open my invoices',
        "Barcodes in the loyalty card screen don't scan at the till",
        'The website layout is broken on my tablet in landscape mode',
        "I get 'something went wrong' every time I try to leave a review",
        'The map in the store finder is completely grey',
        'Push notifications arrive hours late',
        "Copying the tracking number from the app doesn't work",
        'The page asks me to enable JavaScript although it is enabled',
        "The app crashes every time I open it",
        "The website shows error 500 when I try to check out",
        "The page freezes when I click on pay and then I get charged twice",
        "Nothing happens when I press the add to cart button",
        "The app won't install on my {device}",
        "Images don't load on the product pages",
        "I get a blank white screen after the latest update",
        "Search returns no results even for products I know you sell",
        "Notifications stopped working on my {device}",
        "The checkout page keeps loading forever",
        "The app logs me out every few minutes",
        "Your website doesn't work in Firefox",
        "I can't upload a photo for my review, it says file error",
        "The video in the tutorial doesn't play",
        "The app is extremely slow since yesterday",
        "When I scan the barcode the camera just shows black",
        "The language setting keeps switching back to English",
        "I tried to pay and got a message saying something went wrong, error code {code}",
        "The filters on the search page don't do anything",
        "Dark mode makes the text unreadable",
        "The app asks for location permission again and again",
        "My wishlist disappeared after the update",
        "The sync between the app and the website is broken",
        "The chat window doesn't open on my {device}",
        "I'm getting a certificate warning when I visit your site",
        "The app drains my battery even when it's closed",
        "The download button for the manual gives a 404",
        "Tracking page shows an error when I open it from the app",
        "The login button does nothing on the mobile website",
        "After the update the app crashes on startup on my {device}",
    ],
}
GREETINGS = ["", "", "", "Hi, ", "Hello, ", "Hi there, ", "Good morning, ", "Hey, ", "Dear support, ", "Hello team, "]
CLOSERS = ["", "", "", " Thanks.", " Thank you!", " Please help.", " Any update?", " This is urgent.",
           " Thanks in advance.", " I've been waiting for days.", " Really frustrating.", " Cheers"]
DETAILS = {
    "billing": ["", "", " I have the bank statement.", " It's the second time this happens.",
                " My account is under my wife's name."],
    "delivery": ["", "", " I ordered it for a birthday.", " I paid for express.", " I'm not home after 5pm."],
    "account": ["", "", " I've tried three times already.", " I use the app on Android.",
                " I need to order something today."],
    "technical": ["", "", " I already reinstalled it.", " I cleared the cache.", " It worked fine last week."],
}
FILL = {
    "amount": ["$19.99", "€49", "£12.50", "$120", "€9.99", "$64.20"],
    "order": ["#48213", "#50771", "A-10394", "#39920", "#77125", "B-2203"],
    "day": ["yesterday", "on Monday", "last Friday", "two days ago", "this morning"],
    "country": ["Canada", "Germany", "Australia", "Ireland", "Mexico"],
    "device": ["iPhone", "Android phone", "iPad", "Samsung tablet", "Pixel"],
    "code": ["E-302", "0x80070005", "PAY-17", "503"],
    "weekday": ["Friday", "the weekend", "Christmas", "next Tuesday"],
}
PER_INTENT = 105


def _slip(text: str, rng: random.Random) -> str:
    """Sometimes lower case, a dropped final full stop, or two swapped letters (a typing slip)."""
    if rng.random() < 0.2:
        text = text.lower()
    if rng.random() < 0.15:
        words = text.split()
        i = rng.randrange(len(words))
        w = words[i]
        if len(w) > 4:
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        text = " ".join(words)
    return text


def messages(seed: int = 7) -> list[tuple[str, str]]:
    """(text, label) pairs, shuffled, ``PER_INTENT`` per intent, no duplicate texts."""
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for label, requests in INTENTS.items():
        seen: set[str] = set()
        while len(seen) < PER_INTENT:
            core = rng.choice(requests)
            core = core.format(**{k: rng.choice(v) for k, v in FILL.items()})
            greeting = rng.choice(GREETINGS)
            if greeting and core.split()[0] not in ("I", "I'm", "I've", "I'd"):
                core = core[0].lower() + core[1:]
            if core[-1] not in ".?!":
                core += "."
            text = _slip(greeting + core + rng.choice(DETAILS[label]) + rng.choice(CLOSERS), rng).strip()
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
    rng.shuffle(rows)
    return rows


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "assets" / "examples" / "support_intents.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(messages())
    print(out)


if __name__ == "__main__":
    main()
