//! MUST's error codes (github.com/MUST-Foundation/api-error-codes) as data:
//! the bank gets a code, a category and the customer-facing Russian text.

use serde::Serialize;

/// The groups of MUST's table (10xx phone, 11xx e-mail/plates, 12xx/14xx vehicle
/// and data, 15xx Ingosstrakh, 16xx Renaissance, 19xx system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCategory {
    Phone,
    Email,
    PlatesAndVin,
    VehicleCategory,
    System,
    PolicyIssuing,
    PolicyData,
    DataCollection,
    Drivers,
    Ingosstrakh,
    Renaissance,
    /// A code that is not in the published table.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MustErrorCode {
    pub code: u32,
    pub category: ErrorCategory,
    pub description: &'static str,
    pub detail_ru: &'static str,
    pub customer_text_ru: &'static str,
}

/// The text a customer sees for a code we do not know.
const UNKNOWN_CUSTOMER_TEXT: &str = "Произошла непредвиденная ошибка. Уже работаем над ее устранением.";

impl MustErrorCode {
    /// The table's entry for `code`, or an `Unknown` entry with the generic customer text.
    pub fn lookup(code: u32) -> MustErrorCode {
        TABLE.iter().copied().find(|e| e.code == code).unwrap_or(MustErrorCode {
            code,
            category: ErrorCategory::Unknown,
            description: "unknown error code",
            detail_ru: "",
            customer_text_ru: UNKNOWN_CUSTOMER_TEXT,
        })
    }
}

/// What the bank can do about a code (issue 21): correct the field it concerns, wait, or
/// nothing. The table's customer text says which: "Введите ..." asks for input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Input the customer can correct: `field` is the `truck.policy-requested` field it concerns.
    Data { field: &'static str },
    /// MUST or the insurers cannot take the request for a while; a new process later may.
    Temporary,
    /// Nothing to correct or wait out: MUST's own faults, an insurer's integration errors,
    /// and MUST's final answers about the vehicle (and codes not in the table).
    System,
}

/// Codes whose customer text asks for input, and the request field each concerns.
const DATA_FIELDS: &[(u32, &str)] = &[
    (1001, "policyholder.phone"),
    (1002, "policyholder.phone"),
    (1101, "policyholder.email"),
    (1102, "vehicle.plates"),
    (1103, "vehicle.plates"),
    (1203, "vehicle.vin"),
    (1406, "vehicle.vin"),
    (1419, "vehicle.vin"),
    (1200, "owner"),
    (1421, "vehicle.technicalInspection"),
    (1402, "vehicle.hasTrailer"),
    (1416, "vehicle.hasTrailer"),
    (1403, "policy.startOn"),
    (1404, "owner.registrationCity"),
    (1405, "owner.registrationCity"),
    (1407, "owner.registrationCity"),
    (1418, "drivers"),
];

/// Codes that say to try again later: a phone banned for 20 minutes, a 30-second wait, and
/// registration "temporarily unavailable" for a kind of party.
const TEMPORARY: &[u32] = &[1003, 1004, 1205, 1206, 1207];

/// "Payment deadline expired, process stopped" (changelog v2's Renaissance codes).
pub const PAYMENT_EXPIRED: u32 = 1603;

impl MustErrorCode {
    pub fn kind(&self) -> ErrorKind {
        if let Some((_, field)) = DATA_FIELDS.iter().find(|(code, _)| *code == self.code) {
            ErrorKind::Data { field }
        } else if TEMPORARY.contains(&self.code) {
            ErrorKind::Temporary
        } else {
            ErrorKind::System
        }
    }
}

#[rustfmt::skip]
pub const TABLE: &[MustErrorCode] = &[
    MustErrorCode { code: 1001, category: ErrorCategory::Phone, description: "empty phone", detail_ru: "Введите номер телефона", customer_text_ru: "Введите номер телефона" },
    MustErrorCode { code: 1002, category: ErrorCategory::Phone, description: "phone invalid", detail_ru: "В номере телефона ошибка", customer_text_ru: "Введите корректный номер телефона" },
    MustErrorCode { code: 1003, category: ErrorCategory::Phone, description: "fraud", detail_ru: "Повторите попытку через 20 минут (бан номера телефона)", customer_text_ru: "Повторите попытку через 20 минут" },
    MustErrorCode { code: 1004, category: ErrorCategory::Phone, description: "wait", detail_ru: "Получить новый код можно через 30 сек", customer_text_ru: "Получить новый код можно через 30 сек" },
    MustErrorCode { code: 1005, category: ErrorCategory::Phone, description: "invalid otp", detail_ru: "Введите правильный код из СМС", customer_text_ru: "Введите правильный код из СМС" },
    MustErrorCode { code: 1006, category: ErrorCategory::Phone, description: "migrated to another phone", detail_ru: "Номер телефона был изменен", customer_text_ru: "Номер телефона был изменен" },
    MustErrorCode { code: 1101, category: ErrorCategory::Email, description: "email invalid", detail_ru: "В адресе e-mail ошибка", customer_text_ru: "Введите правильный e-mail" },
    MustErrorCode { code: 1102, category: ErrorCategory::PlatesAndVin, description: "plates invalid", detail_ru: "Некорректный гос.номер", customer_text_ru: "Введите корректный гос.номер" },
    MustErrorCode { code: 1103, category: ErrorCategory::PlatesAndVin, description: "plates region invalid", detail_ru: "Некорректный регион", customer_text_ru: "Введите корректный регион" },
    MustErrorCode { code: 1203, category: ErrorCategory::PlatesAndVin, description: "vin not determined", detail_ru: "Не удалось определить VIN", customer_text_ru: "Нам не удалось определить VIN. Сервис работает только для ТС у которых есть VIN-номер." },
    MustErrorCode { code: 1406, category: ErrorCategory::PlatesAndVin, description: "incorrect vin", detail_ru: "Некорректный VIN", customer_text_ru: "Введите корректный VIN" },
    MustErrorCode { code: 1419, category: ErrorCategory::PlatesAndVin, description: "incorrect vin", detail_ru: "Введеный VIN не соответствует данным по ГРЗ", customer_text_ru: "Введите VIN-номер" },
    MustErrorCode { code: 1201, category: ErrorCategory::VehicleCategory, description: "invalid vehicle industry", detail_ru: "Некорректная категория ТС", customer_text_ru: "Сервис работает только для Грузовой техники." },
    MustErrorCode { code: 1204, category: ErrorCategory::VehicleCategory, description: "individual vehicle", detail_ru: "Это легковой автомобиль", customer_text_ru: "Сервис работает только для Грузовой техники." },
    MustErrorCode { code: 1208, category: ErrorCategory::VehicleCategory, description: "empty vehicle industry", detail_ru: "Не удалось определить категорию ТС", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1415, category: ErrorCategory::VehicleCategory, description: "invalid vehicle body type group", detail_ru: "Категория ТС не соответствует ни одному из правил: Тип ТС Седельный тягач Тип ТС Грузовик Тип ТС Легкий коммерчески транспорт \"С\" с массой > 3500 Тип ТС Легкий коммерчески транспорт \"B\" с массой <= 3500 Тип ТС Микроавтобус \"С\" с массой > 3500 Тип ТС Микроавтобус \"B\" с массой <= 3500", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1202, category: ErrorCategory::System, description: "loss classifier error", detail_ru: "Системная ошибка LossClassifier", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1301, category: ErrorCategory::System, description: "invalid prediction", detail_ru: "Системная ошибка Prediction", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1401, category: ErrorCategory::System, description: "invalid preScoring state", detail_ru: "Системная ошибка PreScoring", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1901, category: ErrorCategory::System, description: "unhandled sales process error", detail_ru: "Системная ошибка SalesProcess", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1200, category: ErrorCategory::PolicyIssuing, description: "emty vehicle owner", detail_ru: "Отсутвуют данные о Собственнике", customer_text_ru: "Отсутвуют данные о Собственнике" },
    MustErrorCode { code: 1205, category: ErrorCategory::PolicyIssuing, description: "legalEntity disabled", detail_ru: "Сейчас оформление для Юридических лиц недоступно", customer_text_ru: "Оформление для Юридических лиц временно недоступно." },
    MustErrorCode { code: 1206, category: ErrorCategory::PolicyIssuing, description: "individual disabled", detail_ru: "Сейчас оформление для Физических лиц недоступно", customer_text_ru: "Оформление для Физических лиц временно недоступно." },
    MustErrorCode { code: 1207, category: ErrorCategory::PolicyIssuing, description: "privateEntrepreneur disabled", detail_ru: "Сейчас оформление для ИП недоступно", customer_text_ru: "Оформление для ИП временно недоступно." },
    MustErrorCode { code: 1421, category: ErrorCategory::PolicyIssuing, description: "technical inspection expired", detail_ru: "Диагностическая карта просрочена, введите номер действующей ДК", customer_text_ru: "Введите действующую Диагностическую Карту." },
    MustErrorCode { code: 1430, category: ErrorCategory::PolicyIssuing, description: "no price for vehicle", detail_ru: "Непроходная цена, дефицит тарифа", customer_text_ru: "Для вашего авто на данный момент пока нет предложений." },
    MustErrorCode { code: 1402, category: ErrorCategory::PolicyData, description: "should be with trailer", detail_ru: "Используется только с прицепом", customer_text_ru: "Ваш грузовик используется только с прицепом." },
    MustErrorCode { code: 1403, category: ErrorCategory::PolicyData, description: "invalid policy start on", detail_ru: "Не корректная дата начала действия полиса", customer_text_ru: "Введите корректную дату начала действия полиса" },
    MustErrorCode { code: 1404, category: ErrorCategory::PolicyData, description: "empty owner registration city id", detail_ru: "Не введен населенный пункт", customer_text_ru: "Введите населенный пункт регистрации Собственника ТС" },
    MustErrorCode { code: 1405, category: ErrorCategory::PolicyData, description: "malformed owner registration city", detail_ru: "Населенный пункт не существуе", customer_text_ru: "Введите корректный населенный пункт регистрации Собственника ТС" },
    MustErrorCode { code: 1416, category: ErrorCategory::PolicyData, description: "invalid hasTrailer flag", detail_ru: "Используется только с прицепом", customer_text_ru: "Ваш грузовик используется только с прицепом." },
    MustErrorCode { code: 1417, category: ErrorCategory::PolicyData, description: "invalid weightGross", detail_ru: "Категория ТС отличается от \"С\"", customer_text_ru: "Наш сервис работает только для Грузовиков." },
    MustErrorCode { code: 1407, category: ErrorCategory::DataCollection, description: "cannot get city fias id", detail_ru: "Не возможно определить населенный пункт", customer_text_ru: "Введите населенный пункт регистрации Собственника ТС" },
    MustErrorCode { code: 1408, category: ErrorCategory::DataCollection, description: "cannot get base tariff", detail_ru: "Не возможно определить Базовый Тариф", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1409, category: ErrorCategory::DataCollection, description: "cannot get ageExperienceRate", detail_ru: "Не возможно определить КВС", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1410, category: ErrorCategory::DataCollection, description: "cannot get bonusMalusRate", detail_ru: "Не возможно определить КБМ", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1411, category: ErrorCategory::DataCollection, description: "empty weightGross", detail_ru: "Отсутствует разрешенная масса ТС", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1412, category: ErrorCategory::DataCollection, description: "insufficient data to calculate price", detail_ru: "Не возможно рассчитать стоимость полиса", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1413, category: ErrorCategory::DataCollection, description: "cannot get cb territory rate", detail_ru: "Не возможно рассчитать КТ", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1420, category: ErrorCategory::DataCollection, description: "no data", detail_ru: "Недостаточно данных для обработки запроса", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1414, category: ErrorCategory::Drivers, description: "invalid vehicle license category", detail_ru: "Категория ТС известна и не соответствует ни \"С\" ни \"В\"", customer_text_ru: "Наш сервис работает только для Грузовиков." },
    MustErrorCode { code: 1422, category: ErrorCategory::Drivers, description: "empty vehicle license category", detail_ru: "Не определена категория ТС", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1423, category: ErrorCategory::Drivers, description: "empty engine power", detail_ru: "Не определена мощность двигателя ТС", customer_text_ru: "Мы не смогли обработать введенные данные. Попробуйте другое авто." },
    MustErrorCode { code: 1418, category: ErrorCategory::Drivers, description: "invalid driver license categories", detail_ru: "Один из водителей на имеет необходимой категории", customer_text_ru: "Один из водителей на имеет необходимой категории, его нужно исключить или заменить." },
    MustErrorCode { code: 1501, category: ErrorCategory::Ingosstrakh, description: "ingos create agreement error", detail_ru: "Ингосстрах ошибка создания договора", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1502, category: ErrorCategory::Ingosstrakh, description: "ingos create payment link error", detail_ru: "Ингосстрах ошибка создания ссылки на оплату", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1503, category: ErrorCategory::Ingosstrakh, description: "ingos check is paid error", detail_ru: "Ингосстрах ошибка проверка статуса оплаты", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1504, category: ErrorCategory::Ingosstrakh, description: "ingos download policy error", detail_ru: "Ингосстрах ошибка загрузки полиса", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1505, category: ErrorCategory::Ingosstrakh, description: "ingos get tariff error", detail_ru: "Ингосстрах ошибка предварительного расчета", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1601, category: ErrorCategory::Renaissance, description: "renis create agreement error", detail_ru: "Ренессанс ошибка создания договора", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1602, category: ErrorCategory::Renaissance, description: "renis create payment link error", detail_ru: "Ренессанс ошибка создания ссылки на оплату", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1603, category: ErrorCategory::Renaissance, description: "renis check is paid error", detail_ru: "Истек срок оплаты полиса, процесс остановлен", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
    MustErrorCode { code: 1604, category: ErrorCategory::Renaissance, description: "renis download policy error", detail_ru: "Ренессанс ошибка загрузки полиса", customer_text_ru: "Произошла непредвиденная ошибка. Уже работаем над ее устранением." },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_grouped_as_documented() {
        let mut codes: Vec<u32> = TABLE.iter().map(|e| e.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len());
        for e in TABLE {
            match e.code / 100 {
                15 => assert_eq!(e.category, ErrorCategory::Ingosstrakh, "{}", e.code),
                16 => assert_eq!(e.category, ErrorCategory::Renaissance, "{}", e.code),
                10 => assert_eq!(e.category, ErrorCategory::Phone, "{}", e.code),
                _ => {}
            }
            assert!(!e.customer_text_ru.is_empty(), "{}", e.code);
        }
    }

    /// `(code, customer text)` of every row of MUST's published table.
    fn published_table() -> Vec<(u32, String)> {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/reference/must-api-error-codes/README.md");
        let text = std::fs::read_to_string(path).expect("../shared beside the project holds MUST's table");
        text.lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.parse::<u32>().ok()?;
                Some((code, cells.get(5).copied().unwrap_or_default().to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_published_code_is_in_the_table_with_its_customer_text_and_kind() {
        let published = published_table();
        assert_eq!(published.len(), TABLE.len(), "the same codes: {published:?}");
        for (code, text) in &published {
            let entry = MustErrorCode::lookup(*code);
            assert_ne!(entry.category, ErrorCategory::Unknown, "{code} is in our table");
            assert_eq!(entry.customer_text_ru, text, "{code}'s customer text is the table's");
            let asks_for_input = text.starts_with("Введите");
            match entry.kind() {
                // The rest of the data codes name what to change (the owner, the VIN, a
                // trailer, a driver) without "Введите".
                ErrorKind::Data { field } => assert!(
                    asks_for_input || [1200, 1203, 1402, 1416, 1418].contains(code),
                    "{code} ({field}) is data, yet its text asks for nothing: {text}"
                ),
                // 1005 asks for an SMS code: polis never handles one, so nothing to correct.
                _ => assert!(!asks_for_input || *code == 1005, "{code} asks for input: {text}"),
            }
        }
        assert_eq!(
            MustErrorCode::lookup(1205).customer_text_ru,
            "Оформление для Юридических лиц временно недоступно."
        );
        for code in [1205, 1206, 1207] {
            assert_eq!(MustErrorCode::lookup(code).kind(), ErrorKind::Temporary, "{code}");
        }
        for code in [1202, 1301, 1401, 1901, 1501, 1603, 4242] {
            assert_eq!(MustErrorCode::lookup(code).kind(), ErrorKind::System, "{code}");
        }
        assert_eq!(
            MustErrorCode::lookup(1421).kind(),
            ErrorKind::Data { field: "vehicle.technicalInspection" }
        );
    }

    #[test]
    fn lookup_knows_the_table_and_survives_unknown_codes() {
        let e = MustErrorCode::lookup(1421);
        assert_eq!(e.category, ErrorCategory::PolicyIssuing);
        assert_eq!(e.customer_text_ru, "Введите действующую Диагностическую Карту.");
        let u = MustErrorCode::lookup(4242);
        assert_eq!((u.code, u.category), (4242, ErrorCategory::Unknown));
    }
}
