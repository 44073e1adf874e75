"""Loaders and PUBLIC schemas for the benchmark tables in ../shared/data.

Categories come from each data set's documentation file (adult.names,
bank-additional-names.txt, the credit README); numeric bounds are domain-knowledge ranges
(ages, hours in a week, documented code ranges, published macro-economic indicator ranges),
rounded generously. None of them is read from the rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

ADULT_CATEGORIES = {
    "workclass": "Private, Self-emp-not-inc, Self-emp-inc, Federal-gov, Local-gov, State-gov, Without-pay, "
                 "Never-worked",
    "education": "Bachelors, Some-college, 11th, HS-grad, Prof-school, Assoc-acdm, Assoc-voc, 9th, 7th-8th, "
                 "12th, Masters, 1st-4th, 10th, Doctorate, 5th-6th, Preschool",
    "marital-status": "Married-civ-spouse, Divorced, Never-married, Separated, Widowed, Married-spouse-absent, "
                      "Married-AF-spouse",
    "occupation": "Tech-support, Craft-repair, Other-service, Sales, Exec-managerial, Prof-specialty, "
                  "Handlers-cleaners, Machine-op-inspct, Adm-clerical, Farming-fishing, Transport-moving, "
                  "Priv-house-serv, Protective-serv, Armed-Forces",
    "relationship": "Wife, Own-child, Husband, Not-in-family, Other-relative, Unmarried",
    "race": "White, Asian-Pac-Islander, Amer-Indian-Eskimo, Other, Black",
    "sex": "Female, Male",
    "native-country": "United-States, Cambodia, England, Puerto-Rico, Canada, Germany, "
                      "Outlying-US(Guam-USVI-etc), India, Japan, Greece, South, China, Cuba, Iran, Honduras, "
                      "Philippines, Italy, Poland, Jamaica, Vietnam, Mexico, Portugal, Ireland, France, "
                      "Dominican-Republic, Laos, Ecuador, Taiwan, Haiti, Columbia, Hungary, Guatemala, Nicaragua, "
                      "Scotland, Thailand, Yugoslavia, El-Salvador, Trinadad&Tobago, Peru, Hong, "
                      "Holand-Netherlands",
}
ADULT_NULLABLE = {"workclass", "occupation", "native-country"}


def adult_schema() -> dict:
    schema = {
        "age": {"type": "integer", "bounds": [17, 90]},
        "fnlwgt": {"type": "integer", "bounds": [10_000, 1_500_000]},
        "education-num": {"type": "integer", "bounds": [1, 16]},
        "capital-gain": {"type": "integer", "bounds": [0, 99_999]},
        "capital-loss": {"type": "integer", "bounds": [0, 5_000]},
        "hours-per-week": {"type": "integer", "bounds": [1, 99]},
    }
    for col, cats in ADULT_CATEGORIES.items():
        schema[col] = {"type": "categorical", "categories": [c.strip() for c in cats.split(",")],
                       "nullable": col in ADULT_NULLABLE}
    schema["income"] = {"type": "categorical", "categories": ["<=50K", ">50K"]}
    schema["__target__"] = "income"
    return schema


def load_adult():
    """(X_train, y_train, X_test, y_test, schema); '?' is read as missing."""
    def read(name):
        df = pd.read_csv(DATA / "adult" / name, na_values="?", skipinitialspace=True)
        df["income"] = df["income"].str.rstrip(".")
        return df.drop(columns="income"), df["income"]

    Xtr, ytr = read("adult_train.csv")
    Xte, yte = read("adult_test.csv")
    return Xtr, ytr, Xte, yte, adult_schema()


def credit_schema() -> dict:
    schema = {
        "LIMIT_BAL": {"type": "continuous", "bounds": [0, 1_000_000]},
        "SEX": {"type": "categorical", "categories": [1, 2]},
        "EDUCATION": {"type": "categorical", "categories": [0, 1, 2, 3, 4, 5, 6]},
        "MARRIAGE": {"type": "categorical", "categories": [0, 1, 2, 3]},
        "AGE": {"type": "integer", "bounds": [18, 100]},
    }
    for c in ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]:
        schema[c] = {"type": "integer", "bounds": [-2, 9]}
    for i in range(1, 7):
        schema[f"BILL_AMT{i}"] = {"type": "continuous", "bounds": [-200_000, 1_000_000]}
    for i in range(1, 7):
        schema[f"PAY_AMT{i}"] = {"type": "continuous", "bounds": [0, 1_000_000]}
    schema["default payment next month"] = {"type": "categorical", "categories": [0, 1]}
    schema["__target__"] = "default payment next month"
    return schema


def load_credit(test_size: float = 0.3, random_state: int = 0):
    """A fixed stratified 70/30 split of credit_card_default (ID dropped)."""
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(DATA / "credit_card_default" / "credit_card_default.csv").drop(columns="ID")
    y = df.pop("default payment next month")
    Xtr, Xte, ytr, yte = train_test_split(df, y, test_size=test_size, stratify=y, random_state=random_state)
    return Xtr, ytr.rename("default payment next month"), Xte, yte, credit_schema()


BANK_CATEGORIES = {
    "job": ["admin.", "blue-collar", "entrepreneur", "housemaid", "management", "retired", "self-employed",
            "services", "student", "technician", "unemployed", "unknown"],
    "marital": ["divorced", "married", "single", "unknown"],
    "education": ["basic.4y", "basic.6y", "basic.9y", "high.school", "illiterate", "professional.course",
                  "university.degree", "unknown"],
    "default": ["no", "yes", "unknown"],
    "housing": ["no", "yes", "unknown"],
    "loan": ["no", "yes", "unknown"],
    "contact": ["cellular", "telephone"],
    "month": ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    "day_of_week": ["mon", "tue", "wed", "thu", "fri"],
    "poutcome": ["failure", "nonexistent", "success"],
}


def bank_schema() -> dict:
    schema = {
        "age": {"type": "integer", "bounds": [17, 100]},
        "duration": {"type": "integer", "bounds": [0, 5_000]},
        "campaign": {"type": "integer", "bounds": [1, 60]},
        "pdays": {"type": "integer", "bounds": [0, 999]},
        "previous": {"type": "integer", "bounds": [0, 10]},
        "emp.var.rate": {"type": "continuous", "bounds": [-4.0, 2.0]},
        "cons.price.idx": {"type": "continuous", "bounds": [92.0, 95.0]},
        "cons.conf.idx": {"type": "continuous", "bounds": [-55.0, -25.0]},
        "euribor3m": {"type": "continuous", "bounds": [0.0, 6.0]},
        "nr.employed": {"type": "continuous", "bounds": [4_900.0, 5_300.0]},
    }
    for col, cats in BANK_CATEGORIES.items():
        schema[col] = {"type": "categorical", "categories": cats}
    schema["y"] = {"type": "categorical", "categories": ["no", "yes"]}
    schema["__target__"] = "y"
    return schema


def load_bank(test_size: float = 0.3, random_state: int = 0):
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(DATA / "bank_marketing" / "bank-additional-full.csv.gz", sep=None, engine="python")
    y = df.pop("y")
    Xtr, Xte, ytr, yte = train_test_split(df, y, test_size=test_size, stratify=y, random_state=random_state)
    cols = list(bank_schema())
    cols = [c for c in cols if c in Xtr.columns]
    return Xtr[cols], ytr, Xte[cols], yte, bank_schema()


LOADERS = {"adult": load_adult, "credit_card_default": load_credit, "bank_marketing": load_bank}
