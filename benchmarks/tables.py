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


GERMAN_CATEGORIES = {  # attribute codes from german.doc
    "checking_account_status": ["A11", "A12", "A13", "A14"],
    "credit_history": ["A30", "A31", "A32", "A33", "A34"],
    "purpose": ["A40", "A41", "A42", "A43", "A44", "A45", "A46", "A47", "A48", "A49", "A410"],
    "savings_account": ["A61", "A62", "A63", "A64", "A65"],
    "employment_since": ["A71", "A72", "A73", "A74", "A75"],
    "personal_status_sex": ["A91", "A92", "A93", "A94", "A95"],
    "other_debtors": ["A101", "A102", "A103"],
    "property": ["A121", "A122", "A123", "A124"],
    "other_installment_plans": ["A141", "A142", "A143"],
    "housing": ["A151", "A152", "A153"],
    "job": ["A171", "A172", "A173", "A174"],
    "telephone": ["A191", "A192"],
    "foreign_worker": ["A201", "A202"],
}
GERMAN_NUMERIC = {  # domain-knowledge ranges (months, Deutsche Mark, years, documented 1-4 codes)
    "duration_months": [1, 120],
    "credit_amount": [0, 100_000],
    "installment_rate_pct": [1, 4],
    "residence_since": [1, 4],
    "age": [18, 100],
    "num_existing_credits": [1, 4],
    "num_dependents": [1, 2],
}


def german_schema() -> dict:
    df_cols = ["checking_account_status", "duration_months", "credit_history", "purpose", "credit_amount",
               "savings_account", "employment_since", "installment_rate_pct", "personal_status_sex",
               "other_debtors", "residence_since", "property", "age", "other_installment_plans", "housing",
               "num_existing_credits", "job", "num_dependents", "telephone", "foreign_worker"]
    schema = {}
    for col in df_cols:
        if col in GERMAN_NUMERIC:
            schema[col] = {"type": "integer", "bounds": GERMAN_NUMERIC[col]}
        else:
            schema[col] = {"type": "categorical", "categories": GERMAN_CATEGORIES[col]}
    schema["credit_risk"] = {"type": "categorical", "categories": [1, 2]}
    schema["__target__"] = "credit_risk"
    return schema


def load_german(test_size: float = 0.3, random_state: int = 0):
    """German credit (1,000 rows): a fixed stratified 70/30 split; target ``credit_risk`` (1 good, 2 bad)."""
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(DATA / "german_credit" / "german_credit.csv")
    y = df.pop("credit_risk")
    Xtr, Xte, ytr, yte = train_test_split(df, y, test_size=test_size, stratify=y, random_state=random_state)
    return Xtr, ytr, Xte, yte, german_schema()


CERVICAL_NUMERIC = {  # domain-knowledge ranges (ages, counts, years)
    "Age": [10, 100],
    "Number of sexual partners": [0, 50],
    "First sexual intercourse": [8, 50],
    "Num of pregnancies": [0, 20],
    "Smokes (years)": [0, 60],
    "Smokes (packs/year)": [0, 60],
    "Hormonal Contraceptives (years)": [0, 40],
    "IUD (years)": [0, 30],
    "STDs (number)": [0, 10],
    "STDs: Number of diagnosis": [0, 5],
    "STDs: Time since first diagnosis": [0, 30],
    "STDs: Time since last diagnosis": [0, 30],
}
CERVICAL_OTHER_TARGETS = ("Hinselmann", "Schiller", "Citology")


def cervical_schema() -> dict:
    """Binary flags as nullable categorical {0, 1}; counts and years as nullable continuous."""
    cols = pd.read_csv(DATA / "cervical_cancer" / "risk_factors_cervical_cancer.csv", nrows=0).columns
    schema = {}
    for col in cols:
        if col in CERVICAL_OTHER_TARGETS or col == "Biopsy":
            continue
        if col in CERVICAL_NUMERIC:
            schema[col] = {"type": "continuous", "bounds": CERVICAL_NUMERIC[col], "nullable": True}
        else:
            schema[col] = {"type": "categorical", "categories": [0, 1], "nullable": True}
    schema["Biopsy"] = {"type": "categorical", "categories": [0, 1]}
    schema["__target__"] = "Biopsy"
    return schema


def load_cervical(test_size: float = 0.3, random_state: int = 0):
    """Cervical cancer risk factors (858 rows), '?' read as missing; the three alternative screening
    targets are dropped; a fixed stratified 70/30 split; target ``Biopsy``."""
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(DATA / "cervical_cancer" / "risk_factors_cervical_cancer.csv", na_values="?")
    df = df.drop(columns=list(CERVICAL_OTHER_TARGETS))
    y = df.pop("Biopsy")
    schema = cervical_schema()
    for col, spec in schema.items():
        if col in df and spec["type"] == "categorical":
            df[col] = df[col].astype("Int64")
    Xtr, Xte, ytr, yte = train_test_split(df, y, test_size=test_size, stratify=y, random_state=random_state)
    return Xtr, ytr, Xte, yte, schema


LOADERS = {"adult": load_adult, "credit_card_default": load_credit, "bank_marketing": load_bank,
           "german_credit": load_german, "cervical_cancer": load_cervical}
