# demo.py: the notebook `make run` executes in a fresh ipykernel through `cellblock run`.
#
# A year of synthetic monthly sales for three regions, generated from a fixed seed (no network, no
# downloads), summarised with pandas and drawn with matplotlib. In ipykernel, plt.show() sends the
# chart as an image/png display_data, which `cellblock run --outputs DIR` writes into DIR.
# `# %%` lines mark cells (the percent format); run as one cell, they are plain comments.

# %% Data
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(seed=42)
months = pd.period_range("2024-01", periods=12, freq="M")
regions = {"North": 120.0, "South": 95.0, "West": 140.0}  # baseline units per month

rows = []
for region, base in regions.items():
    trend = np.linspace(0.0, 0.25, len(months)) * base  # steady growth over the year
    season = 0.15 * base * np.sin(np.arange(len(months)) / 12 * 2 * np.pi)
    noise = rng.normal(0.0, 0.05 * base, len(months))
    units = np.round(base + trend + season + noise).astype(int)
    price = rng.uniform(9.5, 10.5, len(months)).round(2)
    for month, u, p in zip(months, units, price):
        rows.append({"month": month, "region": region, "units": u, "price": p})

sales = pd.DataFrame(rows)
sales["revenue"] = (sales["units"] * sales["price"]).round(2)

# %% Summary
print(f"{len(sales)} rows: {sales['month'].min()} to {sales['month'].max()}, "
      f"{sales['region'].nunique()} regions\n")
print("Summary statistics")
print(sales[["units", "price", "revenue"]].describe().round(2).to_string())
print()

by_region = sales.groupby("region").agg(
    units=("units", "sum"), revenue=("revenue", "sum"), peak_month_units=("units", "max")
)
by_region["share_%"] = (100 * by_region["revenue"] / by_region["revenue"].sum()).round(1)
print("Totals by region")
print(by_region.sort_values("revenue", ascending=False).to_string())
print()

quarterly = sales.assign(quarter=sales["month"].dt.quarter).pivot_table(
    index="quarter", columns="region", values="revenue", aggfunc="sum"
).round(0)
print("Revenue by quarter")
print(quarterly.to_string())

# %% Chart
monthly = sales.pivot(index="month", columns="region", values="revenue")
fig, ax = plt.subplots(figsize=(8, 4.5))
for region in monthly.columns:
    ax.plot(monthly.index.to_timestamp(), monthly[region], marker="o", label=region)
ax.set_title("Monthly revenue by region, 2024 (synthetic)")
ax.set_xlabel("Month")
ax.set_ylabel("Revenue")
ax.grid(True, alpha=0.3)
ax.legend(title="Region", loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.autofmt_xdate()
fig.tight_layout()
plt.show()
