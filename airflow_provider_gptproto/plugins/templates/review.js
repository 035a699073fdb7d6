(() => {
  // Answers through Airflow's own API with the signed-in user's session cookie, as Airflow's UI does.
  const form = document.getElementById("review"), status = document.getElementById("review-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = JSON.parse(form.dataset.params);
    for (const picked of form.querySelectorAll("input[type=radio]:checked")) params[picked.name] = picked.value;
    const controls = form.querySelectorAll("button, input");
    controls.forEach((control) => { control.disabled = true; });
    status.textContent = "Sending...";
    try {
      const response = await fetch(form.dataset.api, {
        method: "PATCH", credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ chosen_options: [event.submitter.value], params_input: params }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        status.textContent = `Answered ${body.chosen_options.join(", ")} by ${body.responded_by.name}.`;
        form.querySelectorAll("button").forEach((button) => button.remove());
        return;
      }
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
      status.textContent = `Airflow refused the answer (${response.status}): ${detail}`;
    } catch (error) {
      status.textContent = `The answer was not sent: ${error}`;
    }
    controls.forEach((control) => { control.disabled = false; });
  });
})();
