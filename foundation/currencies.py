"""ISO 4217 currencies: the one place that knows each currency's minor-unit exponent."""

from django.conf import settings

# Exponent = number of digits after the decimal point in the major unit.
ISO_4217_EXPONENTS: dict[str, int] = {
    "AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "GHS": 2, "HKD": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KES": 2, "KRW": 0,
    "KWD": 3, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2,
    "PLN": 2, "QAR": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2,
    "UGX": 0, "USD": 2, "VND": 0, "XAF": 0, "XOF": 0, "ZAR": 2,
}  # fmt: skip


def supported_currencies() -> list[str]:
    """Currencies new wallets may be opened in (settings.WALLET_CURRENCIES)."""
    return [code for code in settings.WALLET_CURRENCIES if code in ISO_4217_EXPONENTS]


def exponent(currency: str) -> int:
    return ISO_4217_EXPONENTS[currency]


def format_major(amount: int, currency: str) -> str:
    """Minor units -> a major-unit string, exactly (integer arithmetic, no float)."""
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    if digits == 0:
        return f"{sign}{whole} {currency}"
    return f"{sign}{whole}.{frac:0{digits}d} {currency}"
